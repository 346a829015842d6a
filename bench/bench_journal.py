"""Benchmark of the journal writer (run: python bench/bench_journal.py).

The cost of one event written with fsync (the default: every event is on disk before the run
goes on) against the same without fsync, and the ratio. A run writes a few dozen events, so the
figure that matters is the per-event cost, not the throughput.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from drillbook.journal import Journal, list_runs, new_run_id
from drillbook.secrets import Masker

N_EVENTS = 500
ROUNDS = 5
N_RUNS = 500


def per_event(root: Path, *, sync: bool) -> float:
    """Median over rounds of the mean seconds per event."""
    masker = Masker(["hunter2-secret-value"])
    rounds = []
    for _ in range(ROUNDS):
        with Journal.open(root, new_run_id(), masker=masker, sync=sync) as journal:
            started = time.perf_counter()
            for i in range(N_EVENTS):
                journal.write(
                    "step_finished",
                    step=f"step-{i}",
                    argv=["python", "deploy.py", "--env", "staging"],
                    exit=0,
                    duration_ms=1234,
                    outcome="ok",
                    output_tail="line one\nline two\nconnecting to postgresql://app:pw@db",
                )
            rounds.append((time.perf_counter() - started) / N_EVENTS)
    return statistics.median(rounds)


def bench_list_runs(root: Path) -> None:
    for i in range(N_RUNS):
        with Journal.open(root, f"20260101T{i:06d}Z-000000", sync=False) as journal:
            journal.write("run_started", action="release")
            journal.write("run_finished", outcome="ok")
    started = time.perf_counter()
    runs = list_runs(root)
    elapsed = time.perf_counter() - started
    print(f"list_runs over {len(runs)} journals: {elapsed * 1e3:.1f} ms")


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        synced = per_event(root, sync=True)
        unsynced = per_event(root, sync=False)
        print(
            f"journal event x{N_EVENTS}: with fsync {synced * 1e6:.0f} us, "
            f"without {unsynced * 1e6:.0f} us -> ratio {synced / unsynced:.1f}x"
        )
    with tempfile.TemporaryDirectory() as folder:
        bench_list_runs(Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
