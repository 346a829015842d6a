"""History fills a run's changes from its service's runbook, reading the folder once.

A journal that does not list its changes (a deploy, an older journal) gets them from the
runbook of its service. In a project whose runbook files are not named after their services,
that meant reading every runbook again for each service; now each file is read at most once,
and a broken runbook hides only its own service.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _spies import runbook_loads

from drillbook import history
from drillbook.journal import Journal

SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "runbooks" / "good" / "spec-outline.yaml"
SERVICES = 12


def project(tmp_path: Path) -> Path:
    """Runbooks `file-NN.yaml` for services `svc-NN`, one of them broken; a deploy of each."""
    folder = tmp_path / "runbooks"
    folder.mkdir()
    text = SPEC.read_text()
    for i in range(SERVICES):
        body = text.replace("service: demo-service", f"service: svc-{i:02d}")
        if i == 5:
            body = body.replace("owner: alice", "owner: 42")  # invalid
        (folder / f"file-{i:02d}.yaml").write_text(body)
    ticks = iter(float(t) for t in range(1_780_000_000, 1_780_100_000))
    for i in range(SERVICES):
        run_id = f"20260601T0000{i:02d}Z-{i:06x}"
        base = {"service": f"svc-{i:02d}", "env": "staging", "version": "1.1.0"}
        with Journal.open(tmp_path, run_id, clock=lambda: next(ticks), sync=False) as journal:
            # As a deploy writes it: no `changes` in its first event.
            journal.write("run_started", action="deploy", changes_world=True, **base)
            journal.write("step_started", step="deploy", kind="deploy", changes=True, **base)
            journal.write("deployed", **base)
            journal.write("run_finished", outcome="ok", exit=0, duration_ms=10, **base)
    return tmp_path


def test_changes_come_from_each_services_runbook_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = runbook_loads(monkeypatch)  # writing the project reads no runbook

    found = {entry.service: entry for entry in history.entries(project(tmp_path))}

    assert set(found) == {f"svc-{i:02d}" for i in range(SERVICES)}
    for i in range(SERVICES):
        owners = found[f"svc-{i:02d}"].owners
        assert owners == (() if i == 5 else ("alice",)), i
    assert sorted(loads) == sorted(f"file-{i:02d}.yaml" for i in range(SERVICES))
