"""`drillbook history` after real runs that did not end well: killed, interrupted, failed.

Every run here is a real `drillbook` process on the fixture project; the undo line that history
prints is then typed as it is, and must work.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from _project import SECRET_KEY, Project, Run

from drillbook.journal import new_run_id


def history_json(shop: Project, *args: str) -> list[dict[str, Any]]:
    result = shop.run("history", "--format", "json", *args)
    assert result.code == 0, result
    return json.loads(result.out)


def entry_of(shop: Project, run_id: str) -> dict[str, Any]:
    return next(e for e in history_json(shop) if e["run"] == run_id)


def stopped_mid_deploy(shop: Project, how: str, *args: str) -> str:
    """`drillbook ARGS` whose deploy of 1.1.0 hangs, killed or interrupted there; its run id."""
    proc = shop.start(*args, FIXTURE_HANG="1.1.0")
    shop.wait_for_event(
        # Of this run (1.1.0), and `deploy`, not a rehearsal's `baseline-deploy`.
        lambda e: (
            e["event"] == "command_started"
            and e.get("version") == "1.1.0"
            and e.get("step") == "deploy"
        ),
        proc=proc,
    )
    run_id = shop.journals()[-1].stem
    proc.send_signal(signal.SIGKILL if how == "killed" else signal.SIGINT)
    proc.communicate(timeout=30)
    return run_id


def type_undo(shop: Project, undo: str) -> None:
    """Run the undo command as a person pastes it, once the run is closed."""
    argv = shlex.split(undo)
    assert argv[0] == "drillbook", undo
    result = shop.run(*argv[1:])
    assert result.code == 0, result


@pytest.mark.parametrize("how", ["killed", "interrupted"])
def test_a_release_stopped_mid_deploy_is_undone_by_a_deploy_of_what_ran(
    released: Project, how: str
) -> None:
    run_id = stopped_mid_deploy(released, how, "release", "--version", "1.1.0")

    entry = entry_of(released, run_id)

    assert entry["outcome"] == ("unfinished (killed?)" if how == "killed" else "interrupted")
    # The journal never saw 1.1.0 deployed, so it still says 1.0.0 runs: `rollback --to 1.0.0`
    # would be refused ("not below it"); deploying 1.0.0 again puts back what ran.
    assert entry["undo"] == "drillbook deploy --env staging --version 1.0.0"
    assert released.run("abandon", run_id).code == 0
    type_undo(released, entry["undo"])
    assert released.served_version() == "1.0.0"


def test_history_as_json_says_what_to_type_next_as_the_table_does(released: Project) -> None:
    run_id = stopped_mid_deploy(released, "interrupted", "release", "--version", "1.1.0")
    journal = released.root / ".drillbook" / "journal" / f"{run_id}.jsonl"
    head, rest = journal.read_text().split("\n", 1)
    journal.write_text(f"{head}\na line a hand edit left\n{rest}")

    text = released.run("history")
    entry = entry_of(released, run_id)
    first = next(e for e in history_json(released) if e["run"] != run_id)

    # A script (a chat bot, a pager) is told what a person reading the table is told.
    then = f"`drillbook resume {run_id}`, or `drillbook abandon {run_id}`, then the undo above"
    assert entry["then"] == then
    assert f"then: {then}" in text.out
    assert entry["unreadable_lines"] == 1
    assert "note: 1 line is not JSON" in text.out
    # A finished run has no next step: the keys are there, empty, so every entry has the same.
    assert (first["then"], first["unreadable_lines"]) == (None, 0)


def test_the_last_line_of_a_journal_read_alone_says_whom_to_ask_and_what_to_type(
    released: Project,
) -> None:
    stopped_id = stopped_mid_deploy(released, "interrupted", "release", "--version", "1.1.0")
    # A log store shows the line that ends a run on its own: it must tell the whole story.
    stopped = released.events(stopped_id)[-1]
    stopped_then = entry_of(released, stopped_id)["then"]
    assert released.run("abandon", stopped_id).code == 0
    failed = released.run(
        "release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0", FIXTURE_FAIL_DEPLOY="1.0.0"
    )
    assert failed.code == 5, failed
    failed_id = released.journals()[-1].stem
    last = released.events(failed_id)[-1]

    assert (last["event"], last["outcome"], last["exit"]) == ("run_finished", "rollback_failed", 5)
    assert (last["service"], last["env"], last["version"]) == ("shop", "staging", "1.1.0")
    assert (last["owner"], last["escalation"]) == ("team-shop", "#shop-oncall")
    assert last["owners"] == ["bob"]
    assert "the rollback failed at rollback-deploy" in last["summary"]
    assert last["undo"] == entry_of(released, failed_id)["undo"]
    assert "`drillbook rollback --env staging --to 1.0.0` runs it again" in last["undo"]
    # A run stopped by a signal says what its message said, and what to type next.
    assert (stopped["event"], stopped["outcome"]) == ("run_finished", "interrupted")
    assert stopped["summary"].startswith("interrupted by SIGINT")
    assert f"`drillbook resume {stopped_id}`" in stopped["hint"]
    assert stopped["then"] == stopped_then
    assert stopped["undo"] == "drillbook deploy --env staging --version 1.0.0"
    assert SECRET_KEY not in json.dumps([last, stopped])


def test_a_deployed_line_read_alone_names_the_owner_and_the_undo_that_works(
    released: Project,
) -> None:
    def deployed(run: Run) -> dict[str, Any]:
        assert run.code == 0, run
        [line] = [e for e in released.events() if e["event"] == "deployed"]
        return line

    release = deployed(released.run("release", "--version", "1.1.0"))
    down = deployed(released.run("deploy", "--env", "staging", "--version", "1.0.0"))
    history = history_json(released)
    type_undo(released, down["undo"])
    assert released.served_version() == "1.1.0"
    back = deployed(released.run("rollback", "--env", "staging"))

    # A log store's alert on a deploy shows that one line: whom to ask, how to undo it.
    assert release["owner"] == down["owner"] == back["owner"] == "team-shop"
    assert release["undo"] == history[1]["undo"] == "drillbook rollback --env staging --to 1.0.0"
    assert down["undo"] == history[0]["undo"] == "drillbook deploy --env staging --version 1.1.0"
    assert back["by"] == "rollback"
    assert back["undo"] == "drillbook deploy --env staging --version 1.1.0"
    type_undo(released, back["undo"])
    assert released.served_version() == "1.1.0"


def test_a_failed_rollback_mended_since_says_so_on_its_row(released: Project) -> None:
    failed = released.run(
        "release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0", FIXTURE_FAIL_DEPLOY="1.0.0"
    )
    assert failed.code == 5, failed
    failed_id = released.journals()[-1].stem
    before = entry_of(released, failed_id)
    # The person on call does what the row says, once the cause is fixed.
    assert released.run("rollback", "--env", "staging", "--to", "1.0.0").code == 0
    mended_by = released.journals()[-1].stem

    after = entry_of(released, failed_id)
    text = released.run("history")

    assert before["undo"].startswith("a person must act") and before["then"] is None
    then = (
        f"run {mended_by} has deployed 1.0.0 to staging since, so the undo above no longer "
        "applies: see that run in `drillbook history`"
    )
    assert after["then"] == then
    assert f"then: {then}" in text.out
    assert released.served_version() == "1.0.0"


def test_a_release_whose_deploy_failed_without_rollback_is_undone_by_a_deploy(
    released: Project,
) -> None:
    result = released.run(
        "release", "--version", "1.1.0", "--no-auto-rollback", FIXTURE_FAIL_DEPLOY="1.1.0"
    )
    assert result.code == 5, result
    # The deploy failed: staging does not (surely) run 1.1.0, and the journal says 1.0.0 runs.
    assert "staging runs 1.1.0" not in result.out
    assert "`drillbook deploy --env staging --version 1.0.0`" in result.out
    run_id = released.journals()[-1].stem

    entry = entry_of(released, run_id)

    assert entry["outcome"] == "failed"
    assert entry["undo"] == "drillbook deploy --env staging --version 1.0.0"
    type_undo(released, entry["undo"])


@pytest.mark.parametrize("how", ["killed", "interrupted"])
def test_a_rehearsal_stopped_mid_deploy_is_not_called_nothing_to_undo(
    released: Project, how: str
) -> None:
    run_id = stopped_mid_deploy(released, how, "rehearse", "--version", "1.1.0")

    entry = entry_of(released, run_id)

    # Its baseline (1.0.0) was deployed, then the deploy of 1.1.0 was cut short: staging may run
    # either, so there is something to undo.
    assert not entry["undo"].startswith("nothing to undo"), entry
    assert entry["undo"] == "drillbook deploy --env staging --version 1.0.0"
    assert released.run("abandon", run_id).code == 0
    type_undo(released, entry["undo"])
    assert released.served_version() == "1.0.0"


def test_a_release_still_running_is_shown_running_not_killed(released: Project) -> None:
    proc = released.start("release", "--version", "1.1.0", FIXTURE_SLOW_GATE="unit")
    released.read_until(proc, "unit: sleeping")
    run_id = released.journals()[-1].stem

    entry = entry_of(released, run_id)
    text = released.run("history")
    listed = released.run("resume")

    assert entry["outcome"] == f"running (pid {proc.pid})"  # on this host: no host named
    assert text.code == 0, text
    assert "killed?" not in text.out
    # `resume` and `abandon` would only wait for its lock (exit 75): not offered.
    assert f"drillbook resume {run_id}" not in text.out
    assert listed.code == 0, listed
    assert f"{run_id}  running" in listed.out
    assert f"pid {proc.pid} holds the lock of staging: wait for it" in listed.out
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert entry_of(released, run_id)["outcome"] == "interrupted"


def test_a_killed_rollback_is_offered_only_abandon(released: Project) -> None:
    assert released.run("release", "--version", "1.1.0").code == 0
    proc = released.start("rollback", "--env", "staging", FIXTURE_HANG="1.0.0")
    released.wait_for_event(
        lambda e: e["event"] == "command_started" and e.get("step") == "rollback-deploy",
        proc=proc,
    )
    run_id = released.journals()[-1].stem
    proc.kill()
    proc.communicate()

    text = released.run("history")

    assert text.code == 0, text
    # `resume` refuses all but a release; the line names what works.
    assert f"drillbook resume {run_id}" not in text.out
    then = f"then: `drillbook abandon {run_id}`, then run the rollback again if still needed"
    assert then in text.out
    assert released.run("abandon", run_id).code == 0
    assert released.run("rollback", "--env", "staging").code == 0
    assert released.served_version() == "1.0.0"


def write_journal(shop: Project, run_id: str, *lines: str | dict[str, Any]) -> None:
    """A journal as a newer drillbook, a hand edit or a log tool may leave it."""
    folder = shop.root / ".drillbook" / "journal"
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (folder / f"{run_id}.jsonl").write_text(text)


def started(run_id: str, **fields: Any) -> dict[str, Any]:
    base = {"ts": "2026-11-23T10:00:00.000Z", "run": run_id, "seq": 1, "event": "run_started"}
    return {**base, "action": "release", "service": "shop", "env": "staging", **fields}


#: Fields of a type this drillbook does not write, as a newer one or a hand edit may.
ODD_RUNS = {
    "20261123T100000Z-0000a1": [started("20261123T100000Z-0000a1", changes=["basket"])],
    "20261123T100000Z-0000a2": [started("20261123T100000Z-0000a2", changes="basket")],
    "20261123T100000Z-0000a3": [
        started(
            "20261123T100000Z-0000a3",
            version=1.2,
            previous=["1.1.0"],
            owner={"team": "shop"},
            changes=[{"change": "basket", "owner": {"team": "carol"}, "rollback": 7}, 3],
        ),
        {"event": "step_started", "step": "deploy", "kind": "deploy", "changes": True},
        {"event": "deployed", "version": {"v": 1}},
        {"event": "run_finished", "outcome": {"x": 1}, "duration_ms": "12"},
    ],
    "20261123T100000Z-0000a4": [
        started("20261123T100000Z-0000a4", version="1.2.0"),
        '{"event": "run_finished", "outcome": "ok", "duration_ms": 1e400}',
    ],
    "20261123T100000Z-0000a5": [
        started("20261123T100000Z-0000a5", version="1.2.0", ts="9999-12-31T23:59:59-05:00"),
        {"event": "run_finished", "outcome": "ok", "duration_ms": -5},
        {"event": "run_closed", "how": 5, "by": {"run": "x"}},
    ],
}


def test_odd_fields_in_a_journal_leave_the_rest_of_history_readable(released: Project) -> None:
    [real] = [p.stem for p in released.journals()]
    for run_id, lines in ODD_RUNS.items():
        write_journal(released, run_id, *lines)

    text = released.run("history", "--since", "all")
    found = history_json(released, "--since", "all")

    assert text.code == 0, text
    assert "internal error" not in text.err
    for run_id in [*ODD_RUNS, real]:
        assert run_id in text.out
    assert {e["run"] for e in found} == {*ODD_RUNS, real}
    keys = {tuple(e) for e in found}
    assert len(keys) == 1, keys
    for entry in found:
        assert all(isinstance(o, str) for o in entry["owners"]), entry
        assert entry["duration_ms"] is None or entry["duration_ms"] >= 0, entry
        for change in entry["changes"]:
            assert set(change) == {"change", "title", "owner", "rollback"}, entry
            assert all(v is None or isinstance(v, str) for v in change.values()), entry
        for key in ("version", "previous", "undo"):
            assert entry[key] is None or isinstance(entry[key], str), entry
    # A number stands as its text; what is neither text nor a number is left out.
    odd = next(e for e in found if e["run"] == "20261123T100000Z-0000a3")
    assert (odd["version"], odd["previous"], odd["owners"]) == ("1.2", None, [])
    assert odd["changes"] == [{"change": "basket", "title": None, "owner": None, "rollback": "7"}]


def test_a_run_whose_start_is_not_a_time_is_placed_by_its_run_id(released: Project) -> None:
    # Newer than the real release (by more than the second a run id holds), within the 24h.
    run_id = new_run_id(datetime.now(UTC) + timedelta(seconds=2))
    # A log tool that rewrote `ts` as epoch seconds, in the newest run on staging.
    write_journal(
        released,
        run_id,
        started(run_id, action="deploy", version="1.1.0", found_version="1.0.0", ts=1.7e9),
        {"event": "deployed", "env": "staging", "service": "shop", "version": "1.1.0"},
        {"event": "run_finished", "outcome": "ok", "exit": 0},
    )

    found = history_json(released)
    docs = released.run("docs", "--out", "site")

    # Not hidden from the last 24h, nor listed below older runs: the docs take its deploy for
    # what runs now, and history must show the run that says so, first.
    assert found[0]["run"] == run_id
    begins = datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ")
    assert found[0]["ts"] == begins.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert docs.code == 0, docs
    page = (released.root / "site" / "shop.md").read_text()
    assert "| staging | " in page and "[1.1.0](#release-1-1-0)" in page


def test_a_start_written_in_another_zone_is_ordered_by_its_moment(released: Project) -> None:
    [real] = [p.stem for p in released.journals()]
    # An hour before the real release, written as a log tool in UTC+05:00 writes it: read as
    # text it sorts four hours after it.
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    ts = hour_ago.astimezone(timezone(timedelta(hours=5))).isoformat(timespec="milliseconds")
    run_id = new_run_id(hour_ago)
    write_journal(
        released,
        run_id,
        started(run_id, action="deploy", version="1.1.0", found_version="1.0.0", ts=ts),
        {"event": "deployed", "env": "staging", "service": "shop", "version": "1.1.0"},
        {"event": "run_finished", "outcome": "ok", "exit": 0},
    )

    found = history_json(released)
    docs = released.run("docs", "--out", "site")

    # History, the docs' Right now and the rollback agree: the real release is the newest.
    assert [e["run"] for e in found] == [real, run_id]
    assert docs.code == 0, docs
    assert "[1.0.0](#release-1-0-0)" in (released.root / "site" / "shop.md").read_text()
    refused = released.run("rollback", "--env", "staging")
    assert refused.code == 2 and "staging runs 1.0.0" in refused.err, refused


def test_a_timestamp_without_a_zone_is_read_as_utc_whatever_the_local_zone(
    released: Project,
) -> None:
    run_id = "20261123T100000Z-0000b1"
    write_journal(released, run_id, started(run_id, version="1.2.0", ts="2026-11-23T10:00:00"))
    lines = {}
    for zone in ("UTC", "America/New_York", "Asia/Tokyo"):
        result = released.run("history", "--since", "all", TZ=zone)
        assert result.code == 0, result
        lines[zone] = next(line for line in result.out.splitlines() if run_id in line)

    # The run id, the journal and the column all speak UTC.
    assert all(line.startswith("11-23 10:00:00Z") for line in lines.values()), lines


@pytest.mark.parametrize("since", ["1" + "0" * 400 + "d", "1" + "0" * 5000 + "w"])
def test_a_since_longer_than_the_clock_goes_back_to_the_first_journal(
    released: Project, since: str
) -> None:
    result = released.run("history", "--since", since)

    assert result.code == 0, result
    assert "what changed since the first journal: 1 run" in result.out


def test_a_since_of_leading_zeros_is_its_value(released: Project) -> None:
    result = released.run("history", "--since", "0" * 40 + "1h")

    assert result.code == 0, result
    assert "what changed in the last " in result.out


@pytest.mark.parametrize(
    "lines",
    [
        (),  # a zero-byte journal: created, then the disk filled or the machine died
        (
            '{"ts": "2026-11-23T10:00:00.000Z", "run": "x", "seq": 1, "event": "run_star',
            '{"event": "step_started", "step": "deploy", "kind": "deploy", "changes": true}',
        ),
        (json.dumps({"event": "run_started", "action": "release", "env": "staging"}),),
    ],
    ids=["empty", "first-line-torn", "no-runbook"],
)
def test_resume_of_a_journal_without_its_start_is_refused_and_abandon_closes_it(
    released: Project, lines: tuple[str, ...]
) -> None:
    run_id = "20261123T100000Z-0000c1"
    write_journal(released, run_id, *lines)

    result = released.run("resume", run_id)

    assert result.code == 2, result
    assert "internal error" not in result.err
    assert f"the journal of run {run_id} does not start with a run_started event" in result.err
    assert f"drillbook abandon {run_id}" in result.err
    assert released.run("abandon", run_id).code == 0


def many_changes(count: int) -> str:
    """Release 1.3.0 of `count` changes, each with a long title: a run_started line of ~100 KiB."""
    out = ["  - version: 1.3.0\n    changes:\n"]
    for i in range(count):
        out.append(
            f"      - id: change-{i:03d}\n"
            f"        title: Change {i:03d} {'of the big spring clean-up ' * 10}\n"
            f"        owner: owner-{i % 7}\n"
            "        expected:\n"
            "          summary: /health answers ok.\n"
            "          checks: [healthy]\n"
            "        rollback:\n"
            "          summary: Deploy 1.0.0 again.\n"
            "          retry_safe: true\n"
        )
    return "".join(out)


def test_a_killed_release_of_many_changes_is_still_seen(released: Project) -> None:
    runbook = released.root / "runbooks" / "shop.yaml"
    runbook.write_text(runbook.read_text() + many_changes(250))
    released.commit("a big release")
    proc = released.start("release", "--version", "1.3.0", FIXTURE_HANG="1.3.0")
    released.wait_for_event(
        lambda e: e["event"] == "command_started" and e.get("version") == "1.3.0", proc=proc
    )
    run_id = released.journals()[-1].stem
    assert len(released.journals()[-1].read_bytes().split(b"\n", 1)[0]) > 64 * 1024
    proc.kill()
    proc.communicate()

    entry = entry_of(released, run_id)
    deploy = released.run("deploy", "--env", "staging", "--version", "1.0.0")

    assert entry["outcome"] == "unfinished (killed?)"
    assert len(entry["owners"]) == 7
    # The next run that changes staging sees it too, and asks for resume or abandon.
    assert deploy.code == 3, deploy
    assert f"run {run_id} (release of shop 1.3.0 on staging" in deploy.err
    assert released.run("abandon", run_id).code == 0


def test_a_byte_that_is_not_utf8_in_a_journal_line_hides_nothing(released: Project) -> None:
    run_id = stopped_mid_deploy(released, "killed", "release", "--version", "1.1.0")
    path = released.root / ".drillbook" / "journal" / f"{run_id}.jsonl"
    # A hand edit in a Latin-1 editor: "Turn the feature on" -> "Turn the café on".
    data = path.read_bytes()
    assert b"Turn the feature on" in data.split(b"\n", 1)[0]
    path.write_bytes(data.replace(b"Turn the feature on", b"Turn the caf\xe9 on", 1))

    entry = entry_of(released, run_id)
    deploy = released.run("deploy", "--env", "staging", "--version", "1.0.0")

    assert entry["outcome"] == "unfinished (killed?)"
    assert entry["owners"] == ["bob"]
    assert entry["changes"][0]["title"] == "Turn the caf\ufffd on"
    assert deploy.code == 3, deploy
    assert f"run {run_id} (release of shop 1.1.0 on staging" in deploy.err
    assert released.run("abandon", run_id).code == 0


def test_a_journal_line_that_is_not_json_is_said_to_be_left_out(released: Project) -> None:
    # A crash of the machine can leave a block of NULs where a line was: the reader skips it,
    # and what history says of the run is then judged without it.
    [journal] = released.journals()
    lines = journal.read_bytes().split(b"\n")
    lines[2] = b"\0" * 64 + lines[2][64:]
    journal.write_bytes(b"\n".join(lines))

    result = released.run("history")

    assert result.code == 0, result
    assert (
        f"note: 1 line is not JSON in .drillbook/journal/{journal.stem}.jsonl and left out "
        "of this row"
    ) in result.out
    assert "release  1.0.0" in result.out


def test_runs_of_another_year_show_their_year(released: Project) -> None:
    """The column showed month and day only: a run of a year ago read as one of today."""
    from datetime import UTC, datetime, timedelta

    from drillbook.journal import Journal, new_run_id

    then = datetime.now(UTC) - timedelta(days=366)
    old = new_run_id(then)
    with Journal.open(released.root, old, clock=then.timestamp) as journal:
        base = {"service": "shop", "env": "staging", "version": "1.0.0"}
        journal.write("run_started", action="deploy", changes_world=True, **base)
        journal.write("run_finished", outcome="ok", exit=0, duration_ms=5, **base)

    every = released.run("history", "--since", "all")
    today = released.run("history")

    assert every.code == 0, every
    old_line = next(line for line in every.out.splitlines() if old in line)
    assert old_line.startswith(then.strftime("%Y-%m-%d %H:%M:%SZ")), old_line
    new_line = every.out.splitlines()[2]
    assert new_line.startswith(datetime.now(UTC).strftime("%Y-")), new_line
    # Within this year the short form stays.
    assert today.out.splitlines()[2].startswith(datetime.now(UTC).strftime("%m-%d ")), today


def test_an_empty_answer_says_whether_looking_further_would_find_anything(
    released: Project,
) -> None:
    never = released.run("history", "--env", "production")
    later = released.run("history", "--since", "2999-01-01", "--env", "staging")

    assert never.code == 0, never
    assert "no releases, deploys, rollbacks or rehearsals on production in the last 24h" in (
        never.out
    )
    # Not "`--since 7d` or `--since all` looks further": production never ran at all.
    assert "no journal of this project holds one on production at all" in never.out
    assert "--since" not in never.out
    assert later.code == 0, later
    assert "hint: 1 earlier run: `drillbook history --since all --env staging` lists them" in (
        later.out
    )
    assert "--since 7d" not in later.out


def test_an_environment_of_a_runbook_broken_since_is_not_called_a_typo(
    released: Project,
) -> None:
    runbook = released.root / "runbooks" / "shop.yaml"
    runbook.write_text(runbook.read_text() + "  bad: [\n")

    production = released.run("history", "--env", "production")
    typo = released.run("history", "--env", "qa")

    # history answers from the journals; a runbook it cannot read cannot say what is a typo.
    assert production.code == 0, production
    assert "no releases, deploys, rollbacks or rehearsals on production" in production.out
    assert "runbooks/shop.yaml cannot be read" in production.err
    assert typo.code == 0, typo
    assert released.run("history", "--env", "staging").code == 0


def test_changes_read_from_the_runbook_are_masked_like_the_journal(released: Project) -> None:
    runbook = released.root / "runbooks" / "shop.yaml"
    text = runbook.read_text()
    pasted = f'summary: "Deploy 1.0.0 again; the key is {SECRET_KEY}"'
    runbook.write_text(text.replace("summary: Deploy 1.0.0 again; the feature goes away.", pasted))
    released.commit("a secret pasted into a rollback")
    run_id = "20261123T100000Z-0000d1"
    # An older journal that does not list its changes: history takes them from the runbook.
    write_journal(released, run_id, started(run_id, action="deploy", version="1.1.0"))

    text_out = released.run("history", "--since", "all")
    json_out = released.run("history", "--since", "all", "--format", "json")

    assert text_out.code == 0 and json_out.code == 0, (text_out, json_out)
    [entry] = [e for e in json.loads(json_out.out) if e["run"] == run_id]
    assert entry["owners"] == ["bob"]
    assert entry["changes"][0]["rollback"] == "Deploy 1.0.0 again; the key is ***"
    assert SECRET_KEY not in text_out.text + json_out.text


def test_a_deploy_journaled_with_a_version_that_is_not_text_stops_nothing(
    released: Project,
) -> None:
    run_id = "20991123T100000Z-0000e1"  # the newest run, so its deploy is the current one
    write_journal(
        released,
        run_id,
        started(run_id, action="deploy", version="1.1.0", ts="2099-11-23T10:00:00.000Z"),
        {"event": "deployed", "env": "staging", "service": "shop", "version": {"v": 1}},
        {"event": "run_finished", "outcome": "ok"},
    )

    rollback = released.run("rollback", "--env", "staging")
    docs = released.run("docs", "--out", "site")

    # What runs on staging is not known: the rollback asks where to go, as for no deploy at all.
    assert rollback.code == 2, rollback
    assert "internal error" not in rollback.err
    assert "--to VERSION" in rollback.err
    assert docs.code == 0, docs


def test_a_release_killed_while_rolling_back_says_what_to_type_in_an_order_that_works(
    released: Project,
) -> None:
    # 1.1.0 fails its checks; the rollback's redeploy of 1.0.0 hangs, and drillbook is killed.
    proc = released.start(
        "release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0", FIXTURE_HANG="1.0.0"
    )
    released.wait_for_event(
        lambda e: e["event"] == "command_started" and e.get("step") == "rollback-deploy",
        proc=proc,
    )
    run_id = released.journals()[-1].stem
    proc.kill()
    proc.communicate()

    text = released.run("history")
    resume = released.run("resume", run_id)

    # `resume` refuses a run that was rolling back; history does not offer it.
    assert f"then: `drillbook abandon {run_id}`" in text.out, text
    assert f"drillbook resume {run_id}" not in text.out
    assert resume.code == 3, resume
    hint = resume.err.split("hint: ", 1)[1]
    commands = [part.split("`")[0] for part in hint.split("`")[1::2]]
    assert commands == [
        f"drillbook abandon {run_id}",
        "drillbook rollback --env staging --to 1.0.0",
    ]
    for command in commands:  # typed in the order given, each works
        type_undo(released, command)
    assert released.served_version() == "1.0.0"


@pytest.mark.parametrize("prefix", [b"\xef\xbb\xbf", b"\n"], ids=["utf8-bom", "blank-line"])
def test_a_journal_saved_by_an_editor_still_shows_its_run(released: Project, prefix: bytes) -> None:
    run_id = stopped_mid_deploy(released, "killed", "release", "--version", "1.1.0")
    path = released.root / ".drillbook" / "journal" / f"{run_id}.jsonl"
    path.write_bytes(prefix + path.read_bytes())

    entry = entry_of(released, run_id)
    deploy = released.run("deploy", "--env", "staging", "--version", "1.0.0")

    assert entry["outcome"] == "unfinished (killed?)"
    assert deploy.code == 3, deploy
    assert run_id in deploy.err
    assert released.run("abandon", run_id).code == 0


def right_now(shop: Project) -> dict[str, list[str]]:
    """The "Right now" table of the service page `drillbook docs` writes: env -> its cells."""
    result = shop.run("docs")
    assert result.code == 0, result
    page = (shop.root / "site" / "shop.md").read_text()
    table = page.split("## Right now", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split(" | ") for line in table.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


def test_the_docs_do_not_say_what_runs_when_a_deploy_was_cut_short(released: Project) -> None:
    assert right_now(released)["staging"][1] == "[1.0.0](#release-1-0-0)"
    run_id = stopped_mid_deploy(released, "interrupted", "release", "--version", "1.1.0")

    _, running, undo = right_now(released)["staging"]

    # The journal's last `deployed` still says 1.0.0, but staging may run a half-deployed
    # 1.1.0: the page says it does not know, and gives history's undo, not "-".
    assert running == f"unknown: release 1.1.0 interrupted (run {run_id})"
    assert undo == (
        f"`drillbook abandon {run_id}`, then `drillbook deploy --env staging --version 1.0.0`"
    )
    assert released.run("abandon", run_id).code == 0
    type_undo(released, "drillbook deploy --env staging --version 1.0.0")
    assert right_now(released)["staging"][1:] == [
        "[1.0.0](#release-1-0-0)",
        "no earlier version to go back to (first release): "
        "Nothing to go back to; stop the service.",
    ]


def test_the_docs_send_a_person_to_look_when_a_rollback_failed(released: Project) -> None:
    result = released.run(
        "release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0", FIXTURE_FAIL_DEPLOY="1.0.0"
    )
    assert result.code == 5, result

    _, running, undo = right_now(released)["staging"]

    # Not "1.1.0, roll back with `drillbook rollback --to 1.0.0`": that rollback just failed.
    assert running.startswith("unknown: release 1.1.0 rollback failed"), running
    assert undo.startswith("a person must act"), undo


def test_the_docs_of_a_first_release_whose_deploy_failed_do_not_say_no_deploy(
    shop: Project,
) -> None:
    result = shop.run("release", "--version", "1.0.0", FIXTURE_FAIL_DEPLOY="1.0.0")
    assert result.code == 5, result

    _, running, undo = right_now(shop)["staging"]

    assert running.startswith("unknown: release 1.0.0 failed"), running
    assert undo.startswith("no earlier version to go back to (first release)"), undo
    assert right_now(shop)["production"][1] == "unknown (no deploy in the journal)"


def test_a_stopped_release_undone_since_is_not_sent_to_its_old_undo(released: Project) -> None:
    released.sign_tags_slowly()
    proc = released.start("release", "--version", "1.1.0", new_session=True)
    released.wait_for_signing(proc)  # 1.1.0 deployed and proven; stopped at its tag
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=30)
    run_id = released.journals()[-1].stem
    undo = entry_of(released, run_id)["undo"]
    assert undo == "drillbook rollback --env staging --to 1.0.0"
    type_undo(released, undo)
    rollback_id = released.journals()[-1].stem

    lines = released.run("history").out.splitlines()
    then = lines[lines.index(next(line for line in lines if run_id in line)) + 2]

    # Not "abandon, then the undo above": staging runs 1.0.0 now, and `rollback --to 1.0.0`
    # is refused.
    assert "then the undo above" not in then, then
    assert f"`drillbook abandon {run_id}`; run {rollback_id} has deployed 1.0.0" in then
    assert released.run(*shlex.split(undo)[1:]).code == 2
    assert released.run("abandon", run_id).code == 0


def test_the_resume_listing_says_where_each_run_stopped_and_what_to_type(
    released: Project,
) -> None:
    stopped = stopped_mid_deploy(released, "interrupted", "deploy", "--version", "1.1.0")

    listed = released.run("resume")

    assert listed.code == 0, listed
    lines = listed.out.splitlines()
    # Not "last: run_finished": the step it stopped in; and, as history says, that `resume`
    # refuses a deploy: abandon it, and what puts staging back.
    assert lines[0].startswith(f"{stopped}  interrupted deploy of shop 1.1.0 on staging"), lines
    assert "last: step deploy interrupted" in lines[0], lines
    assert lines[1] == "  undo: drillbook deploy --env staging --version 1.0.0"
    assert lines[2] == (
        f"  then: `drillbook abandon {stopped}`, then run the deploy again if still needed"
    )
    assert f"drillbook resume {stopped}" not in listed.out
    assert released.run("resume", stopped).code == 2


def test_a_killed_release_is_closed_before_its_undo_is_typed(released: Project) -> None:
    released.sign_tags_slowly()
    proc = released.start("release", "--version", "1.1.0", new_session=True)
    released.wait_for_signing(proc)  # 1.1.0 deployed and proven; killed at its tag
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    run_id = released.journals()[-1].stem
    undo = "drillbook rollback --env staging --to 1.0.0"
    assert entry_of(released, run_id)["undo"] == undo

    lines = released.run("history").out.splitlines()
    then = lines[lines.index(next(line for line in lines if run_id in line)) + 2]
    _, running, now = right_now(released)["staging"]

    # The killed run holds staging: the undo typed first is refused (exit 3), so both say
    # to close the run first.
    assert released.run(*shlex.split(undo)[1:]).code == 3
    assert then.strip() == (
        f"then: `drillbook resume {run_id}`, or `drillbook abandon {run_id}`, then the undo above"
    )
    assert running == "[1.1.0](#release-1-1-0)"
    assert now == f"`drillbook abandon {run_id}`, then `{undo}`"
    assert released.run("abandon", run_id).code == 0
    type_undo(released, undo)
    assert released.served_version() == "1.0.0"


def test_a_run_stopped_in_its_gates_since_does_not_make_the_docs_sure_again(
    released: Project,
) -> None:
    cut = stopped_mid_deploy(released, "interrupted", "deploy", "--version", "1.1.0")
    proc = released.start("release", "--version", "1.1.0", FIXTURE_SLOW_GATE="unit")
    released.read_until(proc, "unit: sleeping")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert released.journals()[-1].stem != cut

    _, running, _ = right_now(released)["staging"]

    # The release changed nothing: staging still runs what the cut-short deploy left.
    assert running == f"unknown: deploy 1.1.0 interrupted (run {cut})"


def test_a_stopped_release_whose_runbook_changed_since_is_not_offered_resume(
    released: Project,
) -> None:
    proc = released.start("release", "--version", "1.1.0", FIXTURE_SLOW_GATE="unit")
    released.read_until(proc, "unit: sleeping")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    run_id = released.journals()[-1].stem
    runbook = released.root / "runbooks" / "shop.yaml"
    runbook.write_text(runbook.read_text().replace("A tiny shop", "A small shop"))
    released.commit("reword the shop")

    text = released.run("history").out
    listed = released.run("resume").out

    # `resume` refuses it (exit 3: its plan may not be the one half run): not offered.
    assert released.run("resume", run_id).code == 3
    assert f"drillbook resume {run_id}" not in text + listed
    then = f"then: `drillbook abandon {run_id}`, then release again if still needed"
    assert then in text and then in listed
