"""drillbook's invoke tasks: the only layer that prints and chooses exit codes.

A project's own `tasks.py` puts them beside its own tasks with `project_namespace` (what
`drillbook init` writes), or takes them alone as `from drillbook.tasks import namespace`; the
`drillbook` console script runs the same collection. Task bodies import the library lazily so
that `drillbook --help` costs little more than importing invoke.
"""

from __future__ import annotations

import sys

from invoke import Collection

from drillbook.console import quiet_broken_pipe
from drillbook.tasks.check import check, schema
from drillbook.tasks.demo import demo
from drillbook.tasks.docs import docs
from drillbook.tasks.history import history
from drillbook.tasks.init import init
from drillbook.tasks.rehearse import rehearse
from drillbook.tasks.release import plan, release, rollback
from drillbook.tasks.resume import abandon, resume
from drillbook.tasks.steps import (
    deploy,
    integration,
    lint,
    rollback_note,
    tag,
    unit,
    verify_config,
)

# Under invoke's program, `invoke --list | head -1` ended in a traceback (see the function).
quiet_broken_pipe()

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
    rehearse,
    history,
    resume,
    abandon,
    schema,
    docs,
    demo,
    init,
)


def project_namespace(module_name: str) -> Collection:
    """A project's own tasks (those of the module named) with drillbook's beside them.

    The last line of a project's `tasks.py`: `ns = project_namespace(__name__)`. A task of the
    project's own wins over drillbook's of the same name; drillbook's stays reachable as
    `drillbook TASK`.
    """
    ns = Collection.from_module(sys.modules[module_name])
    own = set(ns.task_names)
    for name, item in namespace.tasks.items():
        if name not in own:
            ns.add_task(item, name=name)
    return ns
