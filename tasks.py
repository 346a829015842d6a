"""drillbook's own tasks: the package's collection, plus the benchmarks of this repository."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from invoke import Collection, Context, task

from drillbook.tasks import namespace

BENCH = Path(__file__).resolve().parent / "bench" / "run.py"


@task(
    iterable=["only"],
    help={
        "quick": "few runs and small sizes, for CI (seconds, not minutes)",
        "only": "measure only this figure (repeatable): startup, check, steps, release, ...",
        "no_scale": "skip the scale series (check and docs at 10 to 10,000 runbooks, ...)",
    },
)
def bench(
    c: Context, quick: bool = False, only: list[str] | None = None, no_scale: bool = False
) -> None:
    """Run the benchmarks (bench/run.py): ratios against baselines, written to bench/out/."""
    argv = [sys.executable, str(BENCH)]
    argv += ["--quick"] if quick else []
    argv += ["--no-scale"] if no_scale else []
    for name in only or []:
        argv += ["--only", name]
    c.run(shlex.join(argv), pty=False)


ns = Collection()
for name, item in namespace.tasks.items():
    ns.add_task(item, name=name)
ns.add_task(bench)
