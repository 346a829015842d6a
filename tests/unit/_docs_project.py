"""The fixture project of the docs tests: the `shop` runbook, and journals as runs write them.

The story, on a fixed clock (2026-11-18 onwards, UTC):

- 1.0.0 and 1.1.0 are released to staging;
- 1.1.0 is rehearsed twice: first the rollback checks fail (restored), then it passes;
- 1.1.0 is released to production;
- 1.2.0 is rehearsed with an older runbook, then released to staging, where its checks fail and
  it rolls itself back to 1.1.0;
- 1.3.0 is declared but never released nor rehearsed.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drillbook.journal import Journal

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "docs-project"
SERVICE = "shop"
OLD_SHA = "0" * 64
T0 = datetime(2026, 11, 18, 9, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0


def runbook_sha(root: Path) -> str:
    return hashlib.sha256((root / "runbooks" / "shop.yaml").read_bytes()).hexdigest()


def write_run(
    root: Path,
    run_id: str,
    start: float,
    action: str,
    env: str,
    version: str,
    events: list[tuple[str, dict[str, Any]]],
    *,
    outcome: str = "ok",
    duration_ms: int = 42_000,
    sha: str | None = None,
    **started: Any,
) -> None:
    """One run's journal: `run_started`, the given events, `run_finished`; 10 s apart."""
    ticks = iter(start + 10.0 * i for i in range(len(events) + 2))
    base = {"service": SERVICE, "env": env, "version": version}
    with Journal.open(root, run_id, clock=lambda: next(ticks), sync=False) as journal:
        journal.write(
            "run_started",
            **base,
            action=action,
            run_action=action,
            runbook="runbooks/shop.yaml",
            runbook_sha256=sha or runbook_sha(root),
            owner="team-checkout",
            **started,
        )
        for name, fields in events:
            journal.write(name, **{**base, **fields})
        exit_code = {"ok": 0, "rolled_back": 4}.get(outcome, 1)
        journal.write(
            "run_finished", **base, outcome=outcome, exit=exit_code, duration_ms=duration_ms
        )


def _release(
    root: Path, run_id: str, start: float, env: str, version: str, previous: str | None
) -> None:
    write_run(
        root,
        run_id,
        start,
        "release",
        env,
        version,
        [("deployed", {"previous": previous, "by": "release"})],
        previous=previous,
        undo=f"drillbook rollback --env {env}" + (f" --to {previous}" if previous else ""),
    )


def _rehearsal(
    root: Path,
    run_id: str,
    start: float,
    version: str,
    previous: str,
    *,
    outcome: str,
    restore_ms: int,
    sha: str,
    report: bool,
) -> None:
    stem = f"reports/shop-{version}-rehearsal-{run_id}"
    write_run(
        root,
        run_id,
        start,
        "rehearse",
        "staging",
        version,
        [
            ("deployed", {"version": version, "previous": previous, "by": "rehearse"}),
            ("deployed", {"version": previous, "previous": version, "by": "rehearse"}),
            ("deployed", {"version": version, "previous": previous, "by": "rehearse"}),
            (
                "rehearsal_finished",
                {
                    "outcome": outcome,
                    "previous": previous,
                    "baseline_ms": 900,
                    "deploy_ms": 5200,
                    "verify_ms": 3100,
                    "restore_ms": restore_ms,
                    "total_ms": restore_ms + 9200,
                    "report_md": f"{stem}.md" if report else None,
                    "report_json": f"{stem}.json" if report else None,
                    "runbook_sha256": sha,
                    "failed_checks": [] if outcome == "ok" else ["healthy"],
                    "found_version": version,
                    "left_on": version,
                },
            ),
        ],
        outcome=outcome,
        duration_ms=restore_ms + 9200,
        sha=sha,
        previous=previous,
        found_version=version,
    )


def write_story(root: Path) -> None:
    """The journals of the story in the module docstring."""
    sha = runbook_sha(root)
    _release(root, "20261118T090000Z-aaaaaa", T0, "staging", "1.0.0", None)
    _release(root, "20261119T090000Z-aaaaab", T0 + 24 * HOUR, "staging", "1.1.0", "1.0.0")
    _rehearsal(
        root,
        "20261119T150000Z-bbbbba",
        T0 + 30 * HOUR,
        "1.1.0",
        "1.0.0",
        outcome="failed_checks_restored",
        restore_ms=4100,
        sha=sha,
        report=False,
    )
    _rehearsal(
        root,
        "20261120T090000Z-bbbbbb",
        T0 + 48 * HOUR,
        "1.1.0",
        "1.0.0",
        outcome="ok",
        restore_ms=2350,
        sha=sha,
        report=True,
    )
    _release(root, "20261120T140000Z-cccccc", T0 + 53 * HOUR, "production", "1.1.0", "1.0.0")
    _rehearsal(
        root,
        "20261121T090000Z-dddddd",
        T0 + 72 * HOUR,
        "1.2.0",
        "1.1.0",
        outcome="ok",
        restore_ms=850,
        sha=OLD_SHA,
        report=False,
    )
    write_run(
        root,
        "20261121T100000Z-eeeeee",
        T0 + 73 * HOUR,
        "release",
        "staging",
        "1.2.0",
        [
            ("deployed", {"previous": "1.1.0", "by": "release"}),
            ("rollback_started", {"reason": "checkout-fast failed", "to_version": "1.1.0"}),
            ("deployed", {"version": "1.1.0", "previous": "1.2.0", "by": "rollback"}),
            ("rollback_finished", {"outcome": "ok", "to_version": "1.1.0", "duration_ms": 8100}),
        ],
        outcome="rolled_back",
        previous="1.1.0",
        undo="drillbook rollback --env staging --to 1.1.0",
    )


def make_project(tmp_path: Path) -> Path:
    """A copy of the fixture project with the story's journals."""
    root = tmp_path / "shop"
    shutil.copytree(FIXTURE, root)
    write_story(root)
    return root
