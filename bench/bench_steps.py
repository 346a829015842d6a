"""The cost of one step: drillbook's executor against make and against a bare subprocess.run.

    python bench/bench_steps.py [--quick]

Each side runs 50 no-op commands (`true`) one after the other and is timed as a whole,
the sides alternated:

- make: a Makefile with 50 phony targets whose recipe is `@true`, run by `make -s` (one
  process start for make itself, then one fork and exec per target); the goal is against it;
- subprocess.run(["true"]) in a loop, in this process: the floor for starting a command;
- drillbook: `Executor.command` in an open run session, so every step is what a release step
  is: its own process group, output streamed and masked, a `step_started` and a
  `step_finished` event in the journal, a progress line;

The runner alone (`process.run_command` against `subprocess.run`) is in `bench_process.py`.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import harness
from harness import Goal, Result, Scale, Settings, process, timed

STEPS = 50

RUNBOOK = """\
drillbook: 1
service: bench
owner: bench
environments:
  staging:
    url: http://127.0.0.1:9
releases: []
"""


def make_side(folder: Path, steps: int) -> harness.Runner:
    """make over `steps` phony no-op targets, a whole process."""
    targets = [f"t{i}" for i in range(steps)]
    lines = [f".PHONY: all {' '.join(targets)}", f"all: {' '.join(targets)}"]
    lines += [f"{t}:\n\t@true" for t in targets]
    makefile = folder / "Makefile"
    makefile.write_text("\n".join(lines) + "\n")
    make = shutil.which("make")
    if make is None:
        msg = "make is not installed; the steps figure needs it"
        raise harness.BenchError(msg)
    return process([make, "-s", "-f", makefile, "all"], cwd=folder)


def subprocess_loop(folder: Path, steps: int) -> Callable[[], None]:
    """`steps` times `subprocess.run(["true"])`."""

    def run() -> None:
        for _ in range(steps):
            subprocess.run(["true"], check=True, cwd=folder)

    return run


def drillbook_steps(folder: Path, steps: int) -> Callable[[], None]:
    """`steps` no-op steps through the executor of one open run session."""
    from drillbook.console import Console
    from drillbook.execute import Executor
    from drillbook.model import Step
    from drillbook.plan import PlannedStep
    from drillbook.runbook import load_runbook
    from drillbook.session import open_session

    (folder / "runbooks").mkdir(exist_ok=True)
    (folder / "runbooks" / "bench.yaml").write_text(RUNBOOK)
    loaded = load_runbook(folder / "runbooks" / "bench.yaml", root=folder)
    spec = Step(run=["true"])
    planned = [
        PlannedStep(f"step-{i}", "gate", f"no-op {i}", changes=False, argv=("true",))
        for i in range(steps)
    ]

    def run() -> None:
        console = Console(out=io.StringIO(), color=False)
        with open_session(
            loaded,
            action="bench",
            env="staging",
            version=None,
            console=console,
            changes_world=False,
            lock=False,
        ) as session:
            executor = Executor(session, total=steps)
            for step in planned:
                result = executor.command(step, spec, version=None, previous=None)
                if not result.ok:
                    msg = f"{step.id}: {result.detail}"
                    raise harness.BenchError(msg)
            session.outcome, session.exit_code = "ok", 0

    return run


def figures(settings: Settings) -> tuple[list[Result], list[Scale]]:
    """Executor against make (the goal) and against subprocess.run."""
    print(f"steps ({STEPS} no-op steps)", flush=True)
    with tempfile.TemporaryDirectory(prefix="drillbook-bench-steps-") as tmp:
        folder = Path(tmp)
        sides = {
            "drillbook executor, 50 steps": timed(drillbook_steps(folder, STEPS)),
            "make, 50 targets": make_side(folder, STEPS),
            "subprocess.run, 50 times": timed(subprocess_loop(folder, STEPS)),
        }
        samples = harness.measure(sides, runs=settings.runs(15, 3))
    executor = samples["drillbook executor, 50 steps"]
    common = {"per": STEPS, "per_unit": "step"}
    results = [
        Result(
            "per-step overhead, 50 no-op steps",
            executor,
            samples["make, 50 targets"],
            goal=Goal("<=", 2.0),
            **common,
        ),
        Result(
            "per-step overhead, against plain subprocess",
            executor,
            samples["subprocess.run, 50 times"],
            **common,
        ),
    ]
    for result in results:
        harness.report(result)
    return results, []


if __name__ == "__main__":
    sys.exit(harness.standalone("steps", figures))
