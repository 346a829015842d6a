"""The command runner alone: `process.run_command` against `subprocess.run`, and masking.

    python bench/bench_process.py [--quick]

1. One `true`: `run_command` (own process group, streamed and masked output, timeout, tail)
   against `subprocess.run`, per call, alternated; the process runner's own goal is <= 2x.
2. Masking one line of output with 50 secrets known against the same with none: what
   `run_command` pays on every streamed line (reported).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import harness
from harness import Goal, Result, Scale, Settings, timed

CALLS = 20
LINES = 2000
LINE = "2026-11-23 23:29:14 INFO tests/unit/test_runbook.py::test_loads PASSED [ 42%] 0.01s"


def figures(settings: Settings) -> tuple[list[Result], list[Scale]]:
    """The runner and the masking figures."""
    from drillbook.process import run_command
    from drillbook.secrets import Masker

    print("process runner", flush=True)
    with tempfile.TemporaryDirectory(prefix="drillbook-bench-process-") as tmp:
        cwd = Path(tmp)

        def ours() -> None:
            for _ in range(CALLS):
                run_command(["true"], cwd=cwd, timeout=30, on_line=lambda line: None)

        def plain() -> None:
            for _ in range(CALLS):
                subprocess.run(["true"], cwd=cwd, check=False)

        samples = harness.measure(
            {"run_command(['true'])": timed(ours), "subprocess.run(['true'])": timed(plain)},
            runs=settings.runs(15, 3),
        )
    runner = Result(
        "process runner alone (`run_command`)",
        samples["run_command(['true'])"],
        samples["subprocess.run(['true'])"],
        goal=Goal("<=", 2.0),
        per=CALLS,
        per_unit="call",
    )
    many = Masker([secrets.token_urlsafe(24) for _ in range(50)])
    none = Masker([])
    text = LINE + " https://example.com/x/y"

    def mask_with(masker: Masker) -> None:
        for _ in range(LINES):
            masker.mask(text)

    masked = harness.measure(
        {
            "mask a line, 50 secrets": timed(lambda: mask_with(many)),
            "mask a line, no secrets": timed(lambda: mask_with(none)),
        },
        runs=settings.runs(15, 3),
    )
    masking = Result(
        "masking one line of output",
        masked["mask a line, 50 secrets"],
        masked["mask a line, no secrets"],
        per=LINES,
        per_unit="line",
    )
    for result in (runner, masking):
        harness.report(result)
    return [runner, masking], []


if __name__ == "__main__":
    sys.exit(harness.standalone("process", figures))
