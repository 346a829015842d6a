"""SIGKILL at every point of a run, then the next run, `resume RUN` and `abandon RUN`.

Each case kills drillbook's whole process group (drillbook and the git it runs; the commands
it starts live on, in groups of their own, as after a `kill -9` or the OOM killer) right after
it journaled one event of a release, or half-way through writing it. The gates and the deploy
record each start and each good end (`FIXTURE_RECORD`), so the cases can count what ran:
across the killed run and its resume every step ends well exactly once; only the step that
was cut short (started in the killed run, never finished there) may have started twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _project import Project

#: Every event of a release of 1.1.0 over 1.0.0, in order (`EVENT:STEP[:N]`); the matrix kills
#: after each. `test_the_matrix_covers_every_event_of_a_release` keeps it whole.
RELEASE_EVENTS = [
    "run_started",
    "step_started:preflight",
    "step_finished:preflight",
    "step_started:lint",
    "command_started:lint",
    "step_finished:lint",
    "step_started:unit",
    "command_started:unit",
    "step_finished:unit",
    "step_started:verify-config",
    "step_finished:verify-config",
    "step_started:deploy",
    "command_started:deploy",
    "step_finished:deploy",
    "deployed",
    "step_started:integration",
    "check_finished:integration:1",
    "check_finished:integration:2",
    "step_finished:integration",
    "step_started:tag",
    "step_finished:tag",
    "step_started:rollback-note",
    "step_finished:rollback-note",
    "run_finished",
]
#: The release's commands, as the fixture records them.
COMMANDS = ("lint", "unit", "deploy 1.1.0")
PLAN = ["preflight", "lint", "unit", "verify-config", "deploy", "integration", "tag"]
PLAN += ["rollback-note"]


def is_point(event: dict[str, Any], after: str) -> bool:
    """Whether `event` is one RELEASE_EVENTS names as `after` (its N aside)."""
    name, _, step = after.partition(":")
    return event["event"] == name and event.get("step") == (step.split(":")[0] or None)


def recording(shop: Project) -> Project:
    """`shop` with every gate and deploy from now on recorded."""
    shop.env["FIXTURE_RECORD"] = str(shop.record_file)
    return shop


def new_run(shop: Project, before: set[Path]) -> str:
    """The id of the one journal that appeared since `before`."""
    [path] = set(shop.journals()) - before
    return path.stem


def lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a journal, each parsed strictly: a torn line would fail here."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def cut_short(events: list[dict[str, Any]]) -> set[str]:
    """The steps a run started and never finished."""
    started = {e["step"] for e in events if e["event"] == "step_started"}
    return started - {e["step"] for e in events if e["event"] == "step_finished"}


def finished_ok(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["step"]
        for e in events
        if e["event"] == "step_finished" and e["outcome"] in ("ok", "done")
    ]


def count(record: list[str], what: str) -> int:
    return sum(1 for line in record if line.rsplit(" ", 1)[0] == what)


def assert_no_leftovers(shop: Project) -> None:
    """No lock, no temporary file, no process but the service."""
    drillbook = shop.root / ".drillbook"
    assert not list((drillbook / "locks").glob("*.lock"))
    written = (*drillbook.rglob("*"), *shop.root.glob("notes/*"), *shop.root.glob("reports/*"))
    temporary = [p for p in written if ".tmp" in p.name]
    assert not temporary, temporary
    assert not shop.strays()


def assert_released_once(shop: Project) -> None:
    """1.1.0 runs on staging, is tagged on HEAD once and has its one note, and a release run
    again finds it done: it runs nothing and starts no journal."""
    assert shop.served_version() == "1.1.0"
    assert shop.tags() == ["v1.0.0", "v1.1.0"]
    assert shop.git("rev-parse", "v1.1.0^{commit}") == shop.git("rev-parse", "HEAD")
    notes = sorted(p.name for p in (shop.root / "notes").iterdir())
    assert notes == ["shop-1.0.0-rollback.md", "shop-1.1.0-rollback.md"]
    record, journals = shop.record(), shop.journals()
    again = shop.run("release", "--version", "1.1.0")
    assert again.code == 0, again
    assert shop.record() == record
    assert shop.journals() == journals
    history = json.loads(shop.run("history", "--format", "json").out)
    releases = [e for e in history if e["version"] == "1.1.0" and e["outcome"] == "ok"]
    assert len(releases) == 1, history
    assert releases[0]["undo"] == "drillbook rollback --env staging --to 1.0.0", releases


# --- single points, and what the matrix found ----------------------------------------------------


def test_a_release_killed_between_its_deploy_and_the_record_of_it_is_resumed_as_deployed(
    released: Project,
) -> None:
    # The deploy ended well and its end is journaled; its `deployed` event never was.
    shop = recording(released)
    before = set(shop.journals())
    shop.run_killed("step_finished:deploy", "release", "--version", "1.1.0")
    run_id = new_run(shop, before)

    resumed = shop.run("resume", run_id)

    assert resumed.code == 0, resumed
    [deployed] = [e for e in shop.events() if e["event"] == "deployed"]
    assert (deployed["version"], deployed["previous"], deployed["by"]) == (
        "1.1.0",
        "1.0.0",
        "release",
    )
    assert count(shop.record(), "deploy 1.1.0 end") == 1
    # The journal says what runs: the same release again changes nothing, and a rollback
    # goes from 1.1.0 to 1.0.0.
    assert_released_once(shop)
    rolled = shop.run("rollback", "--env", "staging")
    assert rolled.code == 0, rolled
    assert "rolling back staging from 1.1.0 to 1.0.0" in rolled.out
    assert shop.served_version() == "1.0.0"


def test_an_abandoned_release_says_how_to_undo_what_it_deployed(released: Project) -> None:
    before = set(released.journals())
    released.run_killed("deployed", "release", "--version", "1.1.0")
    run_id = new_run(released, before)

    abandoned = released.run("abandon", run_id)

    assert abandoned.code == 0, abandoned
    row = json.loads(released.run("history", "--format", "json").out)[0]
    # Abandoned, what the run deployed is the person's to undo: said at once, and on the line
    # that closes the run, as history says it on its row.
    undo = "drillbook rollback --env staging --to 1.0.0"
    assert (row["run"], row["undo"]) == (run_id, undo)
    assert f"undo: {undo}" in abandoned.out
    closed = released.events(run_id)[-1]
    assert (closed["event"], closed["how"]) == ("run_closed", "abandoned")
    assert (closed["owner"], closed["undo"]) == ("team-shop", undo)
    assert released.run(*undo.split()[1:]).code == 0
    assert released.served_version() == "1.0.0"


def test_a_resume_that_had_nothing_left_to_run_still_says_how_to_undo_the_release(
    released: Project,
) -> None:
    # Killed after its last step: the resume skips every step, and the killed run's history
    # sends the person on call to the resume for the undo.
    shop = released
    before = set(shop.journals())
    shop.run_killed("step_finished:rollback-note", "release", "--version", "1.1.0")
    run_id = new_run(shop, before)
    resumed = shop.run("resume", run_id)
    assert resumed.code == 0, resumed
    resumer = new_run(shop, before | {shop.root / ".drillbook" / "journal" / f"{run_id}.jsonl"})

    history = {e["run"]: e for e in json.loads(shop.run("history", "--format", "json").out)}

    assert history[run_id]["undo"] == f"see run {resumer}, which resumed this one"
    assert history[resumer]["outcome"] == "ok"
    assert history[resumer]["undo"] == "drillbook rollback --env staging --to 1.0.0"


def test_a_release_killed_after_one_of_its_checks_failed_is_not_resumed_to_try_again(
    released: Project,
) -> None:
    # GET /feature failed (its check_finished is journaled), the step never ended: a resume
    # would run the checks again, and tag 1.1.0 if the check passed on the second try.
    shop = released
    before = set(shop.journals())
    shop.run_killed(
        "check_finished:integration:2", "release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0"
    )
    run_id = new_run(shop, before)
    assert shop.events(run_id)[-1]["outcome"] == "fail"

    refused = shop.run("release", "--version", "1.1.0")
    resumed = shop.run("resume", run_id)

    assert refused.code == 3, refused
    assert f"drillbook resume {run_id}" not in refused.err
    assert "it had failed at integration, so it cannot be resumed" in refused.err
    assert resumed.code == 3, resumed
    assert f"run {run_id} had failed at integration when it stopped" in resumed.err
    hint = f"`drillbook abandon {run_id}` closes it (and stops what it left running); then "
    assert hint + "`drillbook rollback --env staging --to 1.0.0` rolls back" in resumed.err
    assert shop.tags() == ["v1.0.0"]
    listed = json.loads(shop.run("history", "--format", "json").out)
    assert f"drillbook resume {run_id}" not in json.dumps(listed)
    # What it says works.
    assert shop.run("abandon", run_id).code == 0
    rolled = shop.run("rollback", "--env", "staging", "--to", "1.0.0")
    assert rolled.code == 0, rolled
    assert shop.served_version() == "1.0.0"
    assert shop.tags() == ["v1.0.0"]


@pytest.mark.parametrize("action", ["release", "rollback"])
def test_a_run_killed_after_its_rollback_proved_itself_is_only_left_to_close(
    released: Project, action: str
) -> None:
    shop = released
    if action == "release":
        args: tuple[str, ...] = ("release", "--version", "1.1.0")
        env = {"FIXTURE_BROKEN": "1.1.0"}
    else:
        assert shop.run("release", "--version", "1.1.0").code == 0
        args, env = ("rollback", "--env", "staging"), {}
    before = set(shop.journals())
    shop.run_killed("rollback_finished", *args, **env)
    run_id = new_run(shop, before)

    refused = shop.run("deploy", "--version", "1.0.0")

    assert refused.code == 3, refused
    assert "not yet proven" not in refused.err
    assert "had finished and its checks pass, so staging runs 1.0.0" in refused.err
    assert f"`drillbook abandon {run_id}` closes it; nothing else is left to do" in refused.err
    assert shop.run("abandon", run_id).code == 0
    assert shop.served_version() == "1.0.0"
    assert_no_leftovers(shop)


@pytest.mark.parametrize("tidy", [False, True], ids=["as-is", "empty-one-abandoned"])
def test_a_resume_killed_before_its_own_start_leaves_the_run_it_closed_open_to_resume(
    released: Project, tidy: bool
) -> None:
    # The resume closed the run it continues ("resumed by R"), then died before R's first
    # event: nothing of R ran, so the run is still the one to resume.
    shop = recording(released)
    before = set(shop.journals())
    shop.run_killed("step_finished:lint", "release", "--version", "1.1.0")
    run_id = new_run(shop, before)
    killed = shop.root / ".drillbook" / "journal" / f"{run_id}.jsonl"
    shop.run_killed("run_closed", "resume", run_id)
    [never] = set((shop.root / ".drillbook" / "journal").glob("*.jsonl")) - before - {killed}
    assert never.read_bytes() == b""
    listed = shop.run("resume")
    assert f"{never.stem}  open        nothing readable: killed as it started" in listed.out
    assert f"`drillbook abandon {never.stem}` closes it" in listed.out
    if tidy:
        # Closing it, as the listing says, closes nothing else.
        assert shop.run("abandon", never.stem).code == 0

    refused = shop.run("release", "--version", "1.1.0")
    listed = shop.run("resume")
    resumed = shop.run("resume", run_id)

    assert refused.code == 3, refused
    assert f"run {run_id} (release of shop 1.1.0 on staging" in refused.err
    assert f"`drillbook resume {run_id}` continues it" in refused.err
    assert f"{run_id}  open" in listed.out, listed
    assert resumed.code == 0, resumed
    assert not never.exists()  # it held nothing; listed, it would be a run open forever
    assert [line.split()[0] for line in shop.record() if "start" in line] == [
        "lint",
        "unit",
        "deploy",
    ]
    history = {e["run"]: e for e in json.loads(shop.run("history", "--format", "json").out)}
    resumer = history[run_id]["undo"].split()[2].rstrip(",")
    assert history[resumer]["outcome"] == "ok"
    assert_released_once(shop)
    assert_no_leftovers(shop)


@pytest.mark.parametrize("close", ["resume", "abandon"])
def test_a_note_half_written_by_a_killed_release_is_removed_when_the_run_is_closed(
    released: Project, close: str
) -> None:
    # Killed after it made the note's temporary file, before the rename: nothing else would
    # ever delete that file.
    shop = released
    before = set(shop.journals())
    shop.run_killed("tmp:shop-1.1.0-rollback.md", "release", "--version", "1.1.0")
    run_id = new_run(shop, before)
    [half] = (shop.root / "notes").glob(".shop-1.1.0-rollback.md.*.tmp")

    closed = shop.run(close, run_id)

    assert closed.code == 0, closed
    rel = f"notes/{half.name}"
    assert f"removing what run {run_id} left half-written: {rel}" in closed.out
    assert not half.exists()
    if close == "resume":
        [removed] = [e for e in shop.events() if e["event"] == "leftovers_removed"]
        assert (removed["of_run"], removed["files"]) == (run_id, [rel])
        assert_released_once(shop)
    else:
        assert shop.events(run_id)[-1]["removed"] == [rel]
    assert_no_leftovers(shop)


def test_a_rollback_killed_after_its_redeploy_is_named_by_the_next_rollback(
    released: Project,
) -> None:
    # The journal says staging runs 1.0.0 already, with nothing below it: the next rollback
    # must name the run to close, not only "nothing to roll back".
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    before = set(shop.journals())
    shop.run_killed("step_started:rollback-checks", "rollback", "--env", "staging")
    run_id = new_run(shop, before)

    again = shop.run("rollback", "--env", "staging")

    assert again.code == 3, again
    assert f"run {run_id} (rollback of shop 1.1.0 on staging" in again.err
    assert "never finished: it was killed or crashed" in again.err
    assert "its redeploy of 1.0.0 had finished, so staging runs 1.0.0, not yet proven" in again.err
    assert f"`drillbook abandon {run_id}` closes it" in again.err
    assert shop.run("abandon", run_id).code == 0
    refused = shop.run("rollback", "--env", "staging")
    assert refused.code == 2, refused
    assert "staging runs 1.0.0, and no released version below it" in refused.err


# --- the matrix ----------------------------------------------------------------------------


#: Torn lines: a crash half-way through writing the end of each kind of step, and an event of
#: its own. (Torn in its first line, a run has said nothing: see `..._first_write_...`.)
TORN = {
    "step_finished:lint",
    "step_finished:deploy",
    "deployed",
    "check_finished:integration:2",
    "step_finished:tag",
    "step_finished:rollback-note",
}
KILLS = [pytest.param(after, False, id=f"after-{after}") for after in RELEASE_EVENTS[:-1]]
KILLS += [
    pytest.param(after, True, id=f"torn-{after}") for after in RELEASE_EVENTS if after in TORN
]


@pytest.mark.slow
@pytest.mark.parametrize(("after", "torn"), KILLS)
def test_a_release_killed_at_any_point_is_refused_then_resumed_running_each_step_once(
    released: Project, after: str, torn: bool
) -> None:
    shop = recording(released)
    before = set(shop.journals())
    shop.run_killed(after, "release", "--version", "1.1.0", torn=torn)
    run_id = new_run(shop, before)
    killed = shop.root / ".drillbook" / "journal" / f"{run_id}.jsonl"

    refused = shop.run("release", "--version", "1.1.0")

    assert refused.code == 3, refused
    assert f"run {run_id} (release of shop 1.1.0 on staging" in refused.err
    assert "never finished: it was killed or crashed" in refused.err
    assert f"`drillbook resume {run_id}` continues it" in refused.err
    assert f"`drillbook abandon {run_id}` closes it" in refused.err
    written = killed.read_text().splitlines()
    killed_events = [json.loads(line) for line in (written[:-1] if torn else written)]
    if torn:
        assert not written[-1].endswith("}"), written[-1]
    else:
        assert is_point(killed_events[-1], after), killed_events[-1]
    done_before = finished_ok(killed_events)

    resumed = shop.run("resume", run_id)

    assert resumed.code == 0, resumed
    new_id = new_run(shop, before | {killed})
    old, new = lines(killed), lines(shop.root / ".drillbook" / "journal" / f"{new_id}.jsonl")
    # The killed run: every line whole (a torn one was cut), closed by its resume.
    assert old[-1]["event"] == "run_closed"
    assert (old[-1]["how"], old[-1]["by"]) == ("resumed", new_id)
    assert [e["seq"] for e in old] == list(range(1, len(old) + 1))
    # The resume: skips what finished, runs the rest once each, in order, and ends ok.
    assert [e["seq"] for e in new] == list(range(1, len(new) + 1))
    assert new[0]["event"] == "run_started"
    assert new[0]["resumed_from"] == run_id
    skipped = [e["step"] for e in new if e["event"] == "step_skipped"]
    ran = [e["step"] for e in new if e["event"] == "step_started"]
    assert skipped == done_before
    assert skipped + ran == PLAN
    assert finished_ok(new) == ran
    assert new[-1]["event"] == "run_finished"
    assert new[-1]["outcome"] == "ok"
    deployed = [e for e in old + new if e["event"] == "deployed"]
    assert [(e["version"], e["previous"]) for e in deployed] == [("1.1.0", "1.0.0")]
    # Each command ended well once; only the one cut short may have started twice.
    record = shop.record()
    again = cut_short(killed_events)
    for command in COMMANDS:
        runs = 2 if command.split()[0] in again else 1
        assert 1 <= count(record, f"{command} end") <= count(record, f"{command} start") <= runs
        assert count(record, f"{command} end") == 1 or command.split()[0] in again, record
    assert_released_once(shop)
    assert_no_leftovers(shop)


def test_the_matrix_covers_every_event_of_a_release(released: Project) -> None:
    before = set(released.journals())
    assert released.run("release", "--version", "1.1.0").code == 0
    events = released.events(new_run(released, before))

    named = []
    for index, event in enumerate(events):
        name = ":".join(filter(None, (event["event"], event.get("step"))))
        same = [e for e in events[:index] if e["event"] == event["event"]]
        same = [e for e in same if e.get("step") == event.get("step")]
        repeated = any(p.startswith(f"{name}:") for p in RELEASE_EVENTS)
        named.append(f"{name}:{len(same) + 1}" if repeated else name)

    assert named == RELEASE_EVENTS


def test_a_release_killed_in_its_first_write_has_started_nothing(released: Project) -> None:
    # Half its run_started on disk: no event of the run can be read, and none of its steps ran.
    shop = recording(released)
    before = set(shop.journals())
    shop.run_killed("run_started", "release", "--version", "1.1.0", torn=True)
    run_id = new_run(shop, before)

    result = shop.run("release", "--version", "1.1.0")

    assert result.code == 0, result
    assert f"took over the lock for 'staging' from run {run_id}" in result.err
    assert [line.split()[0] for line in shop.record() if "start" in line] == [
        "lint",
        "unit",
        "deploy",
    ]
    listed = shop.run("resume")
    assert f"{run_id}  open        nothing readable: killed as it started" in listed.out
    assert shop.run("abandon", run_id).code == 0
    assert_released_once(shop)
    assert_no_leftovers(shop)


def test_a_release_killed_after_its_last_event_is_done(released: Project) -> None:
    shop = recording(released)
    before = set(shop.journals())
    shop.run_killed("run_finished", "release", "--version", "1.1.0")
    run_id = new_run(shop, before)

    resumed = shop.run("resume", run_id)

    assert resumed.code == 2, resumed
    assert f"run {run_id} finished (ok) at 20" in resumed.err
    assert_released_once(shop)
    # Its lock stays behind (a killed process removes nothing), as a lock whose holder is gone:
    # not a run still going, and the next run that needs it takes it over.
    history = {e["run"]: e for e in json.loads(shop.run("history", "--format", "json").out)}
    assert history[run_id]["outcome"] == "ok"
    assert not shop.strays()


ABANDON_AFTER = [
    "command_started:unit",
    "step_finished:unit",
    "command_started:deploy",
    "step_finished:deploy",
    "step_finished:integration",
    "step_finished:tag",
]


@pytest.mark.slow
@pytest.mark.parametrize("after", ABANDON_AFTER)
def test_a_killed_release_abandoned_lets_a_fresh_release_run_it_all_again(
    released: Project, after: str
) -> None:
    shop = recording(released)
    before = set(shop.journals())
    shop.run_killed(after, "release", "--version", "1.1.0")
    run_id = new_run(shop, before)

    abandoned = shop.run("abandon", run_id)
    fresh = shop.run("release", "--version", "1.1.0")

    assert abandoned.code == 0, abandoned
    assert f"abandoned {run_id}; it stopped at {after.split(':')[1]}" in abandoned.out
    assert fresh.code == 0, fresh
    events = shop.events()
    assert [e["step"] for e in events if e["event"] == "step_started"] == PLAN
    assert not [e for e in events if e["event"] == "step_skipped"]
    history = {e["run"]: e for e in json.loads(shop.run("history", "--format", "json").out)}
    assert history[run_id]["outcome"] == "unfinished (killed?), abandoned"
    assert_released_once(shop)
    assert_no_leftovers(shop)


def hinted_command(text: str) -> list[str] | None:
    """The arguments of the command a refusal's hint says to run after the abandon, if any."""
    import re

    found = [c for c in re.findall(r"then `drillbook ([^`]+)`", text) if c.split()[0] != "abandon"]
    return found[0].split() if found else None


@pytest.mark.slow
@pytest.mark.parametrize(
    "after",
    [
        "step_finished:integration",
        "rollback_started",
        "command_started:rollback-deploy",
        "deployed::2",
        "step_finished:rollback-checks",
        "rollback_finished",
    ],
)
def test_a_release_killed_while_rolling_itself_back_is_finished_by_what_it_says_not_resumed(
    released: Project, after: str
) -> None:
    # 1.1.0 fails its checks; its rollback to 1.0.0 is cut short at `after`.
    shop = recording(released)
    before = set(shop.journals())
    shop.run_killed(after, "release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0")
    run_id = new_run(shop, before)

    refused = shop.run("release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0")
    resumed = shop.run("resume", run_id)

    assert refused.code == 3, refused
    assert f"drillbook resume {run_id}" not in refused.err
    assert "so it cannot be resumed" in refused.err
    assert resumed.code == 3, resumed
    assert "it cannot be resumed as a release" in resumed.err
    assert f"`drillbook abandon {run_id}` closes it" in resumed.err
    assert shop.run("abandon", run_id).code == 0
    then = hinted_command(resumed.err)
    if then is not None:
        done = shop.run(*then)
        assert done.code == 0, done
    assert shop.served_version() == "1.0.0"
    # Nothing of the failed release is left: no tag, no note, and 1.1.0 was deployed once.
    assert shop.tags() == ["v1.0.0"]
    assert not (shop.root / "notes" / "shop-1.1.0-rollback.md").exists()
    assert count(shop.record(), "deploy 1.1.0 start") == 1
    assert_no_leftovers(shop)


OTHER_RUNS = [
    ("rehearse", "command_started:deploy"),
    ("rehearse", "step_finished:integration"),
    ("rehearse", "command_started:rollback-deploy"),
    ("rollback", "command_started:rollback-deploy"),
    ("rollback", "step_started:rollback-checks"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("action", "after"), OTHER_RUNS)
def test_a_killed_rehearsal_or_rollback_is_abandoned_and_run_again(
    released: Project, action: str, after: str
) -> None:
    shop = recording(released)
    if action == "rehearse":
        args: tuple[str, ...] = ("rehearse", "--version", "1.1.0")
    else:
        assert shop.run("release", "--version", "1.1.0").code == 0
        args = ("rollback", "--env", "staging")
    before = set(shop.journals())
    shop.run_killed(after, *args)
    run_id = new_run(shop, before)

    refused = shop.run("deploy", "--version", "1.0.0")
    resumed = shop.run("resume", run_id)

    assert refused.code == 3, refused
    assert f"run {run_id} ({action} of shop" in refused.err
    assert f"drillbook resume {run_id}" not in refused.err
    assert f"`drillbook abandon {run_id}` closes it" in refused.err
    assert resumed.code == 2, resumed
    assert f"run {run_id} is a {action}; only a release resumes step by step" in resumed.err
    assert shop.run("abandon", run_id).code == 0
    then = hinted_command(refused.err)
    again = shop.run(*(then or args))
    assert again.code == 0, again
    assert_no_leftovers(shop)


RESUME_KILLED_AFTER = [
    "run_closed",
    "run_started",
    "step_skipped:lint",
    "step_finished:unit",
    "step_finished:deploy",
    "step_finished:tag",
]


@pytest.mark.slow
@pytest.mark.parametrize("after", RESUME_KILLED_AFTER)
def test_a_resume_killed_at_any_point_is_resumed_in_turn_running_each_step_once(
    released: Project, after: str
) -> None:
    shop = recording(released)
    before = set(shop.journals())
    shop.run_killed("step_finished:lint", "release", "--version", "1.1.0")
    first = new_run(shop, before)
    seen = set(shop.journals())
    shop.run_killed(after, "resume", first)
    second = new_run(shop, seen)

    refused = shop.run("release", "--version", "1.1.0")
    assert refused.code == 3, refused
    stuck = next(
        r for r in (second, first) if f"`drillbook resume {r}` continues it" in refused.err
    )
    resumed = shop.run("resume", stuck)

    assert resumed.code == 0, resumed
    # No command was cut short (each kill came between two of them): each ran once.
    record = shop.record()
    for command in COMMANDS:
        assert count(record, f"{command} start") == count(record, f"{command} end") == 1, record
    runs = [lines(path) for path in shop.journals() if path.stem not in {p.stem for p in before}]
    assert sum(1 for events in runs for e in events if e["event"] == "deployed") == 1
    assert [e["event"] for e in runs[0]][-1] == "run_closed"
    assert_released_once(shop)
    assert_no_leftovers(shop)
