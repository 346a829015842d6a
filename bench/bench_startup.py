"""Start-up: `drillbook --help` against `python -c "import invoke"`, whole processes.

    python bench/bench_startup.py [--quick]

`drillbook --help` is what every command pays before it does anything: the interpreter, invoke,
drillbook's task collection. The floor is importing invoke, which every invoke program needs.
"""

from __future__ import annotations

import sys

import harness
from harness import Goal, Result, Settings, process


def figures(settings: Settings) -> tuple[list[Result], list[harness.Scale]]:
    """The start-up figure."""
    print("start-up", flush=True)
    sides = {
        "drillbook --help": process([harness.drillbook_script(), "--help"]),
        'python -c "import invoke"': process([sys.executable, "-c", "import invoke"]),
    }
    samples = harness.measure(sides, runs=settings.runs(30, 5), warmup=2)
    result = Result(
        "`drillbook --help` start-up",
        samples["drillbook --help"],
        samples['python -c "import invoke"'],
        goal=Goal("<=", 1.3),
    )
    harness.report(result)
    return [result], []


if __name__ == "__main__":
    sys.exit(harness.standalone("startup", figures))
