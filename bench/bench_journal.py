"""The journal: the cost of one event, synced or batched, against writing the same lines plainly.

    python bench/bench_journal.py [--quick]

Every side writes the same 200 events and closes its file, the sides alternated:

- `Journal.write(...)` (fsync per event, the default for a step that changes something);
- `Journal.write(..., sync=False)`, batched: the line is written at once and fsynced with the
  next synced event or at close (what a gate or a check writes);
- baseline: the same JSON lines, already made, appended with `os.write` and never fsynced.

A release writes a few dozen events, so the cost per event is the figure, not the throughput.
Also reported: `list_runs` (what `history` and `resume` read first) over 500 journals against
reading those files whole.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness
from harness import Result, Scale, Settings, timed

EVENTS = 200
JOURNALS = 500
FIELDS: dict[str, Any] = {
    "step": "deploy",
    "argv": ["python", "deploy.py", "--env", "staging"],
    "exit": 0,
    "duration_ms": 1234,
    "outcome": "ok",
    "output_tail": "line one\nline two\nconnecting to postgresql://app:pw@db",
}


def figures(settings: Settings) -> tuple[list[Result], list[Scale]]:
    """The per-event figures and `list_runs`."""
    from drillbook.journal import Journal, list_runs, new_run_id
    from drillbook.secrets import Masker

    print(f"journal ({EVENTS} events a run)", flush=True)
    masker = Masker(["hunter2-secret-value"])
    lines = [
        json.dumps(
            {"ts": "2026-11-23T23:29:14.123Z", "run": "r", "seq": i, "event": "step"} | FIELDS
        ).encode()
        + b"\n"
        for i in range(EVENTS)
    ]
    with tempfile.TemporaryDirectory(prefix="drillbook-bench-journal-") as tmp:
        root = Path(tmp)

        def journal(sync: bool) -> harness.Runner:
            opened: list[Journal] = []

            def open_one() -> None:
                opened[:] = [Journal.open(root, new_run_id(), masker=masker)]

            def write() -> None:
                with opened[0] as j:
                    for _ in range(EVENTS):
                        j.write("step_finished", sync=sync, **FIELDS)

            return timed(write, before=open_one)

        def plain() -> harness.Runner:
            fds: list[int] = []

            def open_one() -> None:
                path = root / f"plain-{new_run_id()}.jsonl"
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
                fds[:] = [os.open(path, flags, 0o644)]

            def write() -> None:
                for line in lines:
                    os.write(fds[0], line)
                os.close(fds[0])

            return timed(write, before=open_one)

        samples = harness.measure(
            {
                "Journal.write, fsync per event": journal(True),
                "Journal.write, batched (sync=False)": journal(False),
                "same lines, os.write, no sync": plain(),
            },
            runs=settings.runs(15, 3),
        )
    base = samples["same lines, os.write, no sync"]
    results = [
        Result(
            "journal cost per event, fsync per event",
            samples["Journal.write, fsync per event"],
            base,
            per=EVENTS,
            per_unit="event",
        ),
        Result(
            "journal cost per event, batched where safe",
            samples["Journal.write, batched (sync=False)"],
            base,
            per=EVENTS,
            per_unit="event",
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="drillbook-bench-journal-") as tmp:
        root = Path(tmp)
        for i in range(settings.pick(JOURNALS, 50)):
            with Journal.open(root, f"20260101T{i:06d}Z-000000", sync=False) as j:
                j.write("run_started", action="release", service="shop", version="1.0.0")
                for _ in range(20):
                    j.write("step_finished", sync=False, **FIELDS)
                j.write("run_finished", outcome="ok")
        files = sorted((root / ".drillbook" / "journal").glob("*.jsonl"))

        def read_all() -> None:
            for path in files:
                path.read_bytes()

        index = root / ".drillbook" / "cache" / "runs.json"

        def cold() -> None:
            index.unlink(missing_ok=True)  # every journal read and summarized, as the first time

        listed = harness.measure(
            {
                "list_runs, no run index": timed(lambda: list_runs(root), before=cold),
                "list_runs, run index kept": timed(lambda: list_runs(root)),
                "read every journal whole": timed(read_all),
            },
            runs=settings.runs(15, 3),
        )
    for side, label in (
        ("list_runs, no run index", "the first time (no run index)"),
        ("list_runs, run index kept", "with the run index"),
    ):
        results.append(
            Result(
                f"`list_runs` over {len(files)} journals, {label}",
                listed[side],
                listed["read every journal whole"],
                per=len(files),
                per_unit="journal",
            )
        )
    for result in results:
        harness.report(result)
    return results, []


if __name__ == "__main__":
    sys.exit(harness.standalone("journal", figures))
