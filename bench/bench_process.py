"""Benchmark of the command runner (run: python bench/bench_process.py).

1. Overhead per step: the median of 200 runs of `run_command(["true"])` against
   `subprocess.run(["true"])`, interleaved so both see the same machine (target <= 2x).
2. The same with `make` over 50 no-op targets, a step that does some work, if make exists.
3. Masking cost per line of output, which run_command pays on every streamed line.
"""

from __future__ import annotations

import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from drillbook.process import run_command
from drillbook.secrets import Masker

N_TRUE = 200
N_MAKE = 50
N_MASK = 20000


def interleaved(a: Callable[[], object], b: Callable[[], object], n: int) -> tuple[float, float]:
    """Median seconds of `a` and of `b`, run alternately `n` times each."""
    a(), b()  # warm up: imports, page cache
    times_a, times_b = [], []
    for _ in range(n):
        t = time.perf_counter()
        a()
        times_a.append(time.perf_counter() - t)
        t = time.perf_counter()
        b()
        times_b.append(time.perf_counter() - t)
    return statistics.median(times_a), statistics.median(times_b)


def bench_true(cwd: Path) -> float:
    ours, plain = interleaved(
        lambda: run_command(["true"], cwd=cwd, timeout=30),
        lambda: subprocess.run(["true"], cwd=cwd, check=False),
        N_TRUE,
    )
    ratio = ours / plain
    print(
        f"true x{N_TRUE}: run_command {ours * 1e3:.2f} ms, subprocess.run {plain * 1e3:.2f} ms "
        f"(median) -> ratio {ratio:.2f}x (target <= 2x)"
    )
    return ratio


def bench_make(cwd: Path) -> float | None:
    make = shutil.which("make")
    if make is None:
        print("make: not installed, skipped")
        return None
    targets = [f"t{i}" for i in range(50)]
    rules = "".join(f"{t}:\n\t@:\n" for t in targets)
    (cwd / "Makefile").write_text(
        f".PHONY: all {' '.join(targets)}\nall: {' '.join(targets)}\n{rules}"
    )
    argv = [make, "-s", "all"]
    ours, plain = interleaved(
        lambda: run_command(argv, cwd=cwd, timeout=30),
        lambda: subprocess.run(argv, cwd=cwd, check=False),
        N_MAKE,
    )
    ratio = ours / plain
    print(
        f"make, 50 no-op targets x{N_MAKE}: run_command {ours * 1e3:.2f} ms, "
        f"subprocess.run {plain * 1e3:.2f} ms (median) -> ratio {ratio:.2f}x"
    )
    return ratio


def bench_mask() -> None:
    line = "2026-11-23 23:29:14 INFO tests/unit/test_runbook.py::test_loads PASSED [ 42%] 0.01s"
    for count in (0, 10, 50):
        masker = Masker([secrets.token_urlsafe(24) for _ in range(count)])
        masker.mask("warm up")
        for label, text in (("plain line", line), ("line with a URL", line + " https://x/y")):
            t = time.perf_counter()
            for _ in range(N_MASK):
                masker.mask(text)
            per_line = (time.perf_counter() - t) / N_MASK
            print(f"mask, {count} secrets, {label}: {per_line * 1e6:.1f} us")


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        ratio = bench_true(cwd)
        bench_make(cwd)
    bench_mask()
    return 0 if ratio <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
