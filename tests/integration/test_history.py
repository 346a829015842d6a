"""`drillbook history`: what changed, newest first, from real journals.

One run is a real release through the console script; the others are written with
`journal.Journal` as the engine writes them (a killed release, an interrupted deploy that was
abandoned, a release that rolled itself back, a rehearsal, a rollback on production three days
ago, and a lint run that history leaves out).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from _project import Project

from drillbook import history
from drillbook.errors import UsageError
from drillbook.journal import Journal, new_run_id

NOW = time.time()


def write_run(
    root: Path,
    *,
    minutes_ago: float,
    action: str,
    version: str,
    env: str = "staging",
    events: tuple[tuple[str, dict[str, Any]], ...] = (),
    finished: dict[str, Any] | None = None,
    closed: dict[str, Any] | None = None,
    **first: Any,
) -> str:
    """A journal as a run of `action` writes it; its run id."""
    start = NOW - minutes_ago * 60
    run_id = new_run_id(datetime.fromtimestamp(start, UTC))
    ticks = iter(range(10_000))
    base = {"service": "shop", "env": env}
    with Journal.open(root, run_id, clock=lambda: start + next(ticks) * 0.25) as journal:
        journal.write(
            "run_started",
            **base,
            version=version,
            action=action,
            run_action=action,
            changes_world=action != "lint",
            owner="team-shop",
            **first,
        )
        for name, fields in events:
            journal.write(name, **base, **fields)
        if finished is not None:
            journal.write("run_finished", **base, **finished)
        if closed is not None:
            journal.write("run_closed", **closed)
    return run_id


CAROL = ({"change": "basket", "title": "A basket", "owner": "carol", "rollback": "Deploy 1.1.0."},)
BOB = ({"change": "feature", "title": "Feature", "owner": "bob", "rollback": "Deploy 1.0.0."},)
DEPLOY_STEP = ("step_started", {"step": "deploy", "kind": "deploy", "changes": True})


def write_history(root: Path) -> dict[str, str]:
    """Six runs besides the real release; their ids by name."""
    return {
        "killed": write_run(
            root,
            minutes_ago=20,
            action="release",
            version="1.2.0",
            previous="1.1.0",
            changes=CAROL,
            events=(DEPLOY_STEP,),
        ),
        "abandoned": write_run(
            root,
            minutes_ago=40,
            action="deploy",
            version="1.1.0",
            events=(
                DEPLOY_STEP,
                ("step_finished", {"step": "deploy", "outcome": "interrupted", "exit": -2}),
            ),
            finished={"outcome": "interrupted", "exit": 130, "duration_ms": 1500},
            closed={"how": "abandoned", "last_step": "deploy"},
        ),
        "rolled_back": write_run(
            root,
            minutes_ago=90,
            action="release",
            version="1.1.0",
            previous="1.0.0",
            changes=BOB,
            events=(
                DEPLOY_STEP,
                ("deployed", {"version": "1.1.0", "previous": "1.0.0", "by": "release"}),
                ("deployed", {"version": "1.0.0", "previous": "1.1.0", "by": "rollback"}),
            ),
            finished={"outcome": "rolled_back", "exit": 4, "duration_ms": 4200},
        ),
        "rehearsal": write_run(
            root,
            minutes_ago=120,
            action="rehearse",
            version="1.1.0",
            previous="1.0.0",
            found_version="1.0.0",
            changes=BOB,
            events=(
                DEPLOY_STEP,
                ("deployed", {"version": "1.0.0", "by": "rehearse-baseline"}),
                ("deployed", {"version": "1.1.0", "by": "rehearse"}),
                ("deployed", {"version": "1.0.0", "by": "rollback"}),
                (
                    "rehearsal_finished",
                    {
                        "outcome": "ok",
                        "version": "1.1.0",
                        "previous": "1.0.0",
                        "restore_ms": 640,
                        "left_on": "1.0.0",
                    },
                ),
            ),
            finished={"outcome": "ok", "exit": 0, "duration_ms": 2600},
        ),
        "production": write_run(
            root,
            minutes_ago=3 * 24 * 60,
            action="rollback",
            env="production",
            version="1.1.0",
            to_version="1.0.0",
            events=(DEPLOY_STEP, ("deployed", {"version": "1.0.0", "by": "rollback"})),
            finished={"outcome": "ok", "exit": 0, "duration_ms": 75_000},
        ),
        "lint": write_run(
            root, minutes_ago=5, action="lint", version="1.1.0", finished={"outcome": "ok"}
        ),
    }


@pytest.fixture
def project(released: Project) -> tuple[Project, dict[str, str]]:
    """The fixture project with 1.0.0 really released, and the runs above in its journal."""
    runs = write_history(released.root)
    runs["release"] = next(p.stem for p in released.journals() if p.stem not in runs.values())
    return released, runs


def test_the_table_lists_what_changed_newest_first_with_owners_and_undo(
    project: tuple[Project, dict[str, str]],
) -> None:
    shop, runs = project
    result = shop.run("history")

    assert result.code == 0, result
    out = result.out
    assert "what changed in the last 24h: 5 runs, newest first" in out
    order = ["release", "killed", "abandoned", "rolled_back", "rehearsal"]
    positions = [out.index(runs[name]) for name in order]
    assert positions == sorted(positions)
    assert runs["production"] not in out  # three days ago
    assert runs["lint"] not in out  # not a change
    lines = out.splitlines()

    def row(name: str) -> tuple[str, str]:
        at = next(i for i, line in enumerate(lines) if runs[name] in line)
        return lines[at], lines[at + 1]

    line, undo = row("release")
    assert "release" in line and "1.0.0" in line and "ok" in line and "alice" in line
    assert "undo: no earlier version to go back to (first release)" in undo
    line, undo = row("killed")
    assert "1.1.0 -> 1.2.0" in line and "unfinished (killed?)" in line and "carol" in line
    # Its deploy never said `deployed`: the journal does not say 1.2.0 runs, so `rollback`
    # would refuse to go "down" to 1.1.0; a deploy of 1.1.0 puts it back.
    assert "undo: drillbook deploy --env staging --version 1.1.0" in undo
    # The release of 1.0.0 that came after it deployed another version: resume refuses it,
    # and its undo (a deploy of 1.1.0) would now replace that release.
    assert (
        f"then: `drillbook abandon {runs['killed']}`; run {runs['release']} has deployed 1.0.0 "
        "to staging since, so the undo above no longer applies"
    ) in out
    line, undo = row("abandoned")
    assert "deploy" in line and "interrupted, abandoned" in line and "1.5s" in line
    assert "bob" in line  # the journal has no changes: the runbook names the owner of 1.1.0
    line, undo = row("rolled_back")
    assert "rolled back" in line and "4.2s" in line
    assert "undo: nothing to undo (rolled back to 1.0.0)" in undo
    line, undo = row("rehearsal")
    assert "rehearse" in line and "1.0.0 -> 1.1.0" in line
    assert "undo: nothing to undo (staging left on 1.0.0, as found)" in undo


def test_since_env_and_json(project: tuple[Project, dict[str, str]]) -> None:
    shop, runs = project

    recent = shop.run("history", "--since", "30m", "--format", "json")
    assert recent.code == 0, recent
    entries = json.loads(recent.out)
    assert [e["run"] for e in entries] == [runs["release"], runs["killed"]]
    killed = entries[1]
    assert killed == {
        "ts": killed["ts"],
        "run": runs["killed"],
        "kind": "release",
        "service": "shop",
        "env": "staging",
        "version": "1.2.0",
        "previous": "1.1.0",
        "outcome": "unfinished (killed?)",
        "duration_ms": None,
        "owners": ["carol"],
        "changes": list(CAROL),
        "undo": "drillbook deploy --env staging --version 1.1.0",
        # The real release deployed 1.0.0 over it since.
        "then": f"`drillbook abandon {runs['killed']}`; run {runs['release']} has deployed "
        "1.0.0 to staging since, so the undo above no longer applies: see that run in "
        "`drillbook history`",
        "unreadable_lines": 0,
    }
    assert isinstance(entries[0]["duration_ms"], int)

    production = json.loads(
        shop.run("history", "--since", "all", "--env", "production", "--format", "json").out
    )
    assert [(e["run"], e["kind"]) for e in production] == [(runs["production"], "rollback")]
    assert (production[0]["version"], production[0]["previous"]) == ("1.0.0", "1.1.0")
    assert production[0]["undo"] == "drillbook deploy --env production --version 1.1.0"

    week = shop.run("history", "--since", "7d")
    assert runs["production"] in week.out
    assert "1m15s" in week.out

    # An environment no runbook declares and no journal names is a typo, not a quiet week.
    typo = shop.run("history", "--env", "qa")
    assert typo.code == 2, typo
    assert "no environment 'qa' in the runbooks or the journals (known: production, staging)" in (
        typo.err
    )

    bad = shop.run("history", "--since", "yesterday")
    assert bad.code == 2, bad
    assert "--since expects a duration such as 30m, 24h or 7d" in bad.err


def test_the_library_api_and_rehearsals(project: tuple[Project, dict[str, str]]) -> None:
    shop, runs = project
    found = history.entries(shop.root, since=None)
    assert [e.run for e in found][:2] == [runs["release"], runs["killed"]]
    assert all(isinstance(e, history.Entry) for e in found)
    assert {e.kind for e in found} == {"release", "deploy", "rollback", "rehearse"}
    assert history.entries(shop.root, since=NOW + 3600) == []

    [rehearsal] = history.rehearsals(shop.root)
    assert rehearsal["run"] == runs["rehearsal"]
    assert rehearsal["env"] == "staging"
    assert rehearsal["ts"].endswith("Z")
    assert (rehearsal["outcome"], rehearsal["restore_ms"]) == ("ok", 640)


def test_only_the_runs_shown_are_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(40):  # older runs with long journals
        write_run(
            tmp_path,
            minutes_ago=60 * 48 + i,
            action="release",
            version="1.0.0",
            events=tuple(("check_finished", {"got": "x" * 2000}) for _ in range(50)),
            finished={"outcome": "ok", "duration_ms": 1},
        )
    recent = write_run(
        tmp_path, minutes_ago=1, action="deploy", version="1.1.0", finished={"outcome": "ok"}
    )
    read: list[str] = []
    real: Callable[[Path], Any] = history.read_journal

    def counting(path: Path) -> Any:
        read.append(path.stem)
        return real(path)

    monkeypatch.setattr(history, "read_journal", counting)
    found = history.entries(tmp_path, since=history.parse_since("24h"))
    assert [e.run for e in found] == [recent]
    assert read == [recent]


def test_finished_runs_are_each_read_once_however_many_there_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whether a stopped run was overtaken by a later deploy is asked of stopped runs only:
    # asked of every finished one, it read the journals again for each (docs of 1,000
    # runbooks with 300 journals went from 2.0 to 3.5 s).
    from drillbook import state

    runs = [
        write_run(
            tmp_path,
            minutes_ago=30 - i,
            action="release",
            version=f"1.{i}.0",
            events=(("deployed", {"version": f"1.{i}.0"}),),
            finished={"outcome": "ok", "duration_ms": 1},
        )
        for i in range(20)
    ]
    read: list[str] = []
    for module in (history, state):
        real: Callable[[Path], Any] = module.read_journal

        def counting(path: Path, real: Callable[[Path], Any] = real) -> Any:
            read.append(path.stem)
            return real(path)

        monkeypatch.setattr(module, "read_journal", counting)
    found = history.entries(tmp_path, since=history.parse_since("24h"))
    assert sorted(e.run for e in found) == sorted(runs)
    assert sorted(read) == sorted(runs)


def test_parse_since() -> None:
    assert history.parse_since("30m", now=10_000) == 10_000 - 1800
    assert history.parse_since("24h", now=100_000) == 100_000 - 86_400
    assert history.parse_since(" 7d ", now=1e6) == 1e6 - 7 * 86_400
    assert history.parse_since("all") is None
    for bad in ("", "24", "h", "-1h", "1y", "1.5h"):
        with pytest.raises(UsageError):
            history.parse_since(bad)


@pytest.mark.parametrize(
    ("since", "moment"),
    [
        ("2026-11-23", "2026-11-23T00:00:00+00:00"),
        ("2026-11-23T14:30", "2026-11-23T14:30:00+00:00"),  # no zone: UTC, as history shows
        ("2026-11-23 14:30:05", "2026-11-23T14:30:05+00:00"),
        ("2026-11-23t14:30z", "2026-11-23T14:30:00+00:00"),
        ("2026-11-23T16:30+02:00", "2026-11-23T14:30:00+00:00"),
        ("20261123T143000Z", "2026-11-23T14:30:00+00:00"),  # as a run id begins
    ],
)
def test_since_a_date_or_time(since: str, moment: str) -> None:
    assert history.parse_since(since) == datetime.fromisoformat(moment).timestamp()
    assert history.since_words(since, history.parse_since(since)) == (
        f"since {moment[:10]} {moment[11:19]}Z"
    )


@pytest.mark.parametrize(
    ("since", "said"),
    [
        ("2026-13-01", "month must be in 1..12"),
        ("2026-11-23T25:00", "hour must be in 0..23"),
        ("2026-11-23 noon", "Invalid isoformat string"),
    ],
)
def test_since_a_date_that_is_not_one_is_refused_saying_why(since: str, said: str) -> None:
    with pytest.raises(UsageError) as refused:
        history.parse_since(since)

    assert f"--since {since!r} is not a date or time ({said}" in str(refused.value)
    assert "2026-11-23T14:30" in str(refused.value)  # what would do


def test_since_a_date_on_the_command_line(project: tuple[Project, dict[str, str]]) -> None:
    shop, runs = project
    # Between the release 90 minutes ago and the rehearsal before it, as a person reads the
    # WHEN column; and as the same moment in another zone.
    cut = datetime.fromtimestamp(NOW - 100 * 60, UTC)
    utc = cut.strftime("%Y-%m-%dT%H:%M:%S")
    zoned = cut.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()

    text = shop.run("history", "--since", utc)
    found = [
        json.loads(shop.run("history", "--since", s, "--format", "json").out) for s in (utc, zoned)
    ]
    future = shop.run("history", "--since", "2999-01-01")
    bad = shop.run("history", "--since", "2026-02-30")

    assert text.code == 0, text
    assert f"what changed since {utc.replace('T', ' ')}Z: " in text.out
    assert runs["rolled_back"] in text.out and runs["rehearsal"] not in text.out
    assert found[0] == found[1] and runs["rolled_back"] in {e["run"] for e in found[0]}
    assert runs["rehearsal"] not in {e["run"] for e in found[0]}
    assert future.code == 0 and "no releases, deploys, rollbacks or rehearsals since 2999" in (
        future.out
    )
    assert bad.code == 2, bad
    assert "day is out of range for month" in bad.err
