"""drillbook's own tasks: the package's collection, plus the benchmarks of this repository."""

from __future__ import annotations

from invoke import Collection

from drillbook.tasks import namespace

ns = Collection()
for name, item in namespace.tasks.items():
    ns.add_task(item, name=name)
