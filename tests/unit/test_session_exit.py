"""A run that stops with an error records the exit code the process then exits with."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from drillbook.console import Console
from drillbook.errors import JournalUnwritable, PreconditionFailed
from drillbook.runbook import load_runbook
from drillbook.session import open_session

GOOD = Path(__file__).resolve().parents[1] / "fixtures" / "runbooks" / "good"


def test_an_error_that_stops_a_run_is_the_exit_its_journal_records(tmp_path: Path) -> None:
    (tmp_path / "runbooks").mkdir()
    path = tmp_path / "runbooks" / "billing.yaml"
    shutil.copyfile(GOOD / "minimal-release.yaml", path)
    loaded = load_runbook(path, root=tmp_path)

    with (
        pytest.raises(PreconditionFailed),
        open_session(
            loaded,
            action="release",
            env="staging",
            version="0.1.0",
            console=Console(out=io.StringIO(), err=io.StringIO()),
        ) as session,
    ):
        raise PreconditionFailed("refused in the middle of the run")

    journal = tmp_path / ".drillbook" / "journal" / f"{session.run_id}.jsonl"
    last = json.loads(journal.read_text().splitlines()[-1])
    assert last["event"] == "run_finished"
    assert last["exit"] == 3


def test_a_run_whose_journal_path_is_taken_stops_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two runs drawing one id (a second and 24 random bits) is rare, not impossible.
    (tmp_path / "runbooks").mkdir()
    path = tmp_path / "runbooks" / "billing.yaml"
    shutil.copyfile(GOOD / "minimal-release.yaml", path)
    loaded = load_runbook(path, root=tmp_path)
    taken = "20261123T232914Z-3f9a1c"
    journal = tmp_path / ".drillbook" / "journal" / f"{taken}.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_text('{"ts":"x","run":"20261123T232914Z-3f9a1c","seq":1,"event":"run_started"}\n')
    monkeypatch.setattr("drillbook.session.new_run_id", lambda: taken)
    ran = False

    with (
        pytest.raises(JournalUnwritable, match="something is already there") as caught,
        open_session(
            loaded,
            action="release",
            env="staging",
            version="0.1.0",
            console=Console(out=io.StringIO(), err=io.StringIO()),
        ),
    ):
        ran = True

    assert not ran
    assert caught.value.exit_code == 3
    assert journal.read_text().count("\n") == 1  # nothing of this run joined it
    assert not (tmp_path / ".drillbook" / "locks" / "staging.lock").exists()
