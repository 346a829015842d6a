"""drillbook's invoke tasks: the only layer that prints and chooses exit codes.

A project's own `tasks.py` exposes them with `from drillbook.tasks import namespace`; the
`drillbook` console script runs the same collection. Task bodies import the library lazily so
that `drillbook --help` costs little more than importing invoke.
"""

from __future__ import annotations

from invoke import Collection

from drillbook.tasks.check import check, schema
from drillbook.tasks.release import abandon, plan, release, resume, rollback
from drillbook.tasks.steps import (
    deploy,
    integration,
    lint,
    rollback_note,
    tag,
    unit,
    verify_config,
)

namespace = Collection(
    check,
    plan,
    release,
    lint,
    unit,
    verify_config,
    deploy,
    integration,
    tag,
    rollback_note,
    rollback,
    resume,
    abandon,
    schema,
)
