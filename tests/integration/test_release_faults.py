"""Faults during a release, through the command line: hung deploys, signals, kills, locks, a
journal that cannot be written. Each test ends with no process of the project left running."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _project import DRILLBOOK, Project

SHORT_DEPLOY = pytest.mark.parametrize("shop", [{"deploy_timeout": "2s"}], indirect=True)
#: run_command's grace between TERM and KILL (the executor uses the default).
GRACE = 5.0


def by_name(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["event"] == name]


def finished(events: list[dict], step: str) -> dict:
    return next(e for e in by_name(events, "step_finished") if e["step"] == step)


def started_steps(events: list[dict]) -> list[str]:
    return [e["step"] for e in by_name(events, "step_started")]


def start_slow_release(shop: Project, **env: str) -> subprocess.Popen[str]:
    """A release whose unit gate sleeps; returns once the gate runs."""
    proc = shop.start("release", "--version", "1.0.0", FIXTURE_SLOW_GATE="unit", **env)
    shop.read_until(proc, "unit: sleeping")
    return proc


def interrupted_release(shop: Project) -> str:
    """A release stopped by SIGTERM in its unit gate (exit 143); its run id."""
    proc = start_slow_release(shop)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=GRACE + 5)
    assert proc.returncode == 143
    return shop.journals()[-1].stem


# --- a deploy that never ends -------------------------------------------------------------------


@SHORT_DEPLOY
@pytest.mark.parametrize("mode", ["wait", "exit"])
def test_a_deploy_whose_grandchild_never_ends_times_out_and_rolls_back(
    released: Project, mode: str
) -> None:
    shop = released
    result = shop.run("release", "--version", "1.1.0", FIXTURE_HANG="1.1.0", FIXTURE_HANG_MODE=mode)

    assert result.code == 4, result
    assert result.seconds < 2 + GRACE + 4
    assert shop.served_version() == "1.0.0"
    assert shop.tags() == ["v1.0.0"]
    events = shop.events()
    deploy = finished(events, "deploy")
    assert deploy["outcome"] == "timeout"
    assert "timed out after 2s; process group stopped" in deploy["detail"]
    assert by_name(events, "rollback_finished")[0]["outcome"] == "ok"
    assert "deploy 1.0.0 to staging again" in result.out
    assert not shop.strays()


# --- signals --------------------------------------------------------------------------------------


# SIGHUP: the terminal was closed (an SSH connection that dropped); 128 + 1, as for the others.
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]
)
def test_a_signal_mid_step_stops_the_step_and_records_it(
    shop: Project, signum: int, code: int
) -> None:
    proc = start_slow_release(shop)
    began = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=GRACE + 5)

    assert proc.returncode == code, out + err
    assert time.monotonic() - began < GRACE
    assert "interrupted" in out + err
    assert not shop.leftovers()
    events = shop.events()
    unit = finished(events, "unit")
    assert unit["outcome"] == "interrupted"
    assert signal.Signals(signum).name in unit["detail"]
    assert "deploy" not in started_steps(events)
    assert events[-1]["event"] == "run_finished"
    assert events[-1]["outcome"] == "interrupted"
    assert events[-1]["exit"] == code
    assert shop.served_version() is None


def test_a_json_release_stopped_by_sigterm_names_its_run_for_resume(shop: Project) -> None:
    # A CI job cancelled mid-run: the pipeline reads which run to resume or abandon.
    proc = shop.start("release", "--version", "1.0.0", "--format", "json", FIXTURE_SLOW_GATE="unit")
    assert proc.stderr is not None
    seen = ""
    while "unit: sleeping" not in seen:  # progress goes to stderr, the JSON to stdout
        line = proc.stderr.readline()
        assert line, seen
        seen += line
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=GRACE + 5)

    assert proc.returncode == 143, out
    run = shop.journals()[-1].stem
    data = json.loads(out)
    assert (data["outcome"], data["exit"], data["retry_safe"]) == ("interrupted", 143, True)
    assert data["run"] == run
    assert data["journal"] == f".drillbook/journal/{run}.jsonl"
    assert f"drillbook resume {run}" in data["hint"]

    # A refusal before any run names none, under the same keys.
    (shop.root / "stray.txt").write_text("x\n")
    refused = json.loads(shop.run("release", "--version", "1.0.0", "--format", "json").out)
    assert (refused["exit"], refused["run"], refused["journal"]) == (3, None, None)


def test_a_signal_during_the_automatic_rollback_says_to_finish_it_not_to_resume(
    released: Project,
) -> None:
    shop = released
    # 1.1.0 fails its checks; the redeploy of 1.0.0 that rolls it back hangs.
    proc = shop.start("release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0", FIXTURE_HANG="1.0.0")
    shop.read_until(proc, "rollback-deploy │ deploying 1.0.0")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=GRACE + 5)

    assert proc.returncode == 143, out + err
    run_id = shop.journals()[-1].stem
    assert finished(shop.events(), "rollback-deploy")["outcome"] == "interrupted"
    assert f"drillbook resume {run_id}" not in err
    assert "the release was rolling staging back to 1.0.0, so it cannot be resumed" in err
    assert f"`drillbook abandon {run_id}` closes it" in err
    assert "`drillbook rollback --env staging --to 1.0.0` rolls back and proves it" in err
    assert not shop.strays()
    # What it says works.
    assert shop.run("resume", run_id).code == 3
    assert shop.run("abandon", run_id).code == 0
    rolled = shop.run("rollback", "--env", "staging", "--to", "1.0.0")
    assert rolled.code == 0, rolled
    assert shop.served_version() == "1.0.0"


def test_a_deploy_by_hand_cut_short_says_how_to_deploy_again_or_put_back(
    released: Project,
) -> None:
    shop = released
    proc = shop.start("deploy", "--version", "1.1.0", FIXTURE_HANG="1.1.0")
    shop.read_until(proc, "deploying 1.1.0")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=GRACE + 5)

    assert proc.returncode == 130, out + err
    assert finished(shop.events(), "deploy")["outcome"] == "interrupted"
    assert "staging may be half-deployed" in err
    assert "`drillbook deploy --env staging --version 1.1.0` deploys 1.1.0 again" in err
    assert "`drillbook deploy --env staging --version 1.0.0` puts back 1.0.0" in err
    assert not shop.strays()


def test_a_deploy_by_hand_that_fails_says_how_to_deploy_again_or_put_back(
    released: Project,
) -> None:
    shop = released
    result = shop.run("deploy", "--version", "1.1.0", FIXTURE_FAIL_DEPLOY="1.1.0")

    assert result.code == 1, result
    assert finished(shop.events(), "deploy")["outcome"] == "failed"
    assert "deploy of 1.1.0 to staging failed: exited 1" in result.err
    assert "staging may be half-deployed" in result.err
    assert "`drillbook deploy --env staging --version 1.1.0` deploys 1.1.0 again" in result.err
    assert "`drillbook deploy --env staging --version 1.0.0` puts back 1.0.0" in result.err
    # What it says works.
    assert shop.run("deploy", "--version", "1.0.0").code == 0
    assert shop.served_version() == "1.0.0"


def test_ctrl_c_that_also_stops_the_reader_of_the_output_is_an_interruption_not_a_crash(
    shop: Project,
) -> None:
    # `drillbook release | tee release.log` and Ctrl-C: tee dies of it too, so the lines that
    # say where the run stopped meet a closed pipe.
    proc = start_slow_release(shop)
    assert proc.stdout is not None
    proc.stdout.close()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=GRACE + 5)

    assert proc.returncode == 130, err
    assert "interrupted by SIGINT" in err
    assert "internal error" not in err
    events = shop.events()
    assert finished(events, "unit")["outcome"] == "interrupted"
    assert not by_name(events, "run_crashed")
    assert (events[-1]["outcome"], events[-1]["exit"]) == ("interrupted", 130)
    run_id = shop.journals()[-1].stem
    assert shop.run("resume", run_id).code == 0


def test_a_release_whose_reader_goes_away_finishes_and_journals_it(shop: Project) -> None:
    # `drillbook release | head -1`: a closed pipe does not stop a release half-way.
    proc = shop.start("release", "--version", "1.0.0")
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 0, err
    assert shop.events()[-1]["outcome"] == "ok"
    assert shop.tags() == ["v1.0.0"]
    assert shop.served_version() == "1.0.0"


def test_a_signal_after_the_journal_was_deleted_exits_as_interrupted_and_journals_it(
    shop: Project,
) -> None:
    # Someone cleans .drillbook/ while a release runs: the run still ends as a signal says.
    proc = start_slow_release(shop)
    journal = shop.journals()[-1]
    journal.unlink()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=GRACE + 5)

    assert proc.returncode == 143, out + err
    assert "interrupted by SIGTERM" in err
    assert not shop.leftovers()
    # ... and its journal is written again, whole, so resume finds the run.
    events = shop.events(journal.stem)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "run_started"
    assert "journal_restored" in [e["event"] for e in events]
    assert finished(events, "unit")["outcome"] == "interrupted"
    assert events[-1]["event"] == "run_finished"
    listed = shop.run("resume")
    assert f"{journal.stem}  interrupted" in listed.out, listed


def test_resume_continues_from_the_interrupted_step_and_repeats_no_finished_one(
    shop: Project,
) -> None:
    run_id = interrupted_release(shop)

    listing = shop.run("resume")
    assert run_id in listing.out
    assert "interrupted" in listing.out

    result = shop.run("resume", run_id)

    assert result.code == 0, result
    assert shop.served_version() == "1.0.0"
    assert shop.tags() == ["v1.0.0"]
    old = shop.events(run_id)
    new = shop.events()
    assert old[-1]["event"] == "run_closed"
    assert old[-1]["how"] == "resumed"
    assert old[-1]["by"] == new[0]["run"]
    assert new[0]["run"] != run_id
    assert new[0]["resumed_from"] == run_id
    # preflight and lint finished before the signal: they are skipped, never run again.
    assert [e["step"] for e in by_name(new, "step_skipped")] == ["preflight", "lint"]
    assert started_steps(new) == [
        "unit",
        "verify-config",
        "deploy",
        "integration",
        "tag",
        "rollback-note",
    ]
    assert new[-1]["outcome"] == "ok"
    # A resumed run is closed: it cannot be resumed again.
    again = shop.run("resume", run_id)
    assert again.code == 2, again
    resumer = shop.journals()[-1].stem
    assert f"run {run_id} was resumed by run {resumer} at 20" in again.err
    assert "drillbook history --since all" in again.err
    assert f"run {resumer} finished (ok) at 20" in shop.run("abandon", resumer).err


def test_resume_refuses_a_run_overtaken_by_a_later_release_it_would_deploy_over(
    shop: Project,
) -> None:
    run_id = interrupted_release(shop)
    assert shop.run("release", "--version", "1.0.0").code == 0
    assert shop.run("release", "--version", "1.1.0").code == 0
    later = shop.journals()[-1].stem

    result = shop.run("resume", run_id)

    assert result.code == 3, result
    assert f"since run {run_id} (release 1.0.0) stopped, run {later} deployed 1.1.0" in result.err
    assert "a resume would release 1.0.0 over it" in result.err
    assert f"`drillbook abandon {run_id}` closes it" in result.err
    assert shop.served_version() == "1.1.0"
    assert not by_name(shop.events(run_id), "run_closed")
    # history says the same: not resume, abandon.
    history = shop.run("history")
    assert f"`drillbook resume {run_id}`" not in history.out
    assert f"`drillbook abandon {run_id}`" in history.out
    assert shop.run("abandon", run_id).code == 0


def test_abandon_closes_an_interrupted_run(shop: Project) -> None:
    proc = start_slow_release(shop)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=GRACE + 5)
    assert proc.returncode == 130
    run_id = shop.journals()[-1].stem

    result = shop.run("abandon", run_id)

    assert result.code == 0, result
    assert "abandoned" in result.out
    assert "unit" in result.out
    events = shop.events(run_id)
    assert events[-1]["event"] == "run_closed"
    assert events[-1]["how"] == "abandoned"
    refused = shop.run("resume", run_id)
    assert refused.code == 2, refused
    assert f"run {run_id} was abandoned at 20" in refused.err
    assert shop.run("release", "--version", "1.0.0").code == 0


def test_resume_refuses_a_run_whose_runbook_changed(shop: Project) -> None:
    run_id = interrupted_release(shop)
    runbook = shop.root / "runbooks" / "shop.yaml"
    runbook.write_text(runbook.read_text().replace("A tiny shop", "A small shop"))
    shop.commit("reword")

    result = shop.run("resume", run_id)

    assert result.code == 3, result
    assert "changed since" in result.err
    assert f"drillbook abandon {run_id}" in result.err
    assert shop.events(run_id)[-1]["event"] == "run_finished"  # not closed, not resumed
    assert shop.served_version() is None


@pytest.mark.parametrize("how", ["moved", "broken"])
def test_resume_of_a_run_whose_runbook_cannot_be_read_now_says_how_to_close_it(
    shop: Project, how: str
) -> None:
    run_id = interrupted_release(shop)
    runbook = shop.root / "runbooks" / "shop.yaml"
    if how == "moved":
        runbook.rename(runbook.with_name("storefront.yaml"))
    else:
        runbook.write_text(runbook.read_text() + "  - unclosed: [\n")
    shop.commit(f"the runbook {how}")

    result = shop.run("resume", run_id)

    assert result.code == 2, result
    assert f"run {run_id} ran from the runbook runbooks/shop.yaml, which cannot be read" in (
        result.err
    )
    assert "its plan is unknown; it cannot be resumed" in result.err
    problem = "cannot read the file" if how == "moved" else "runbooks/shop.yaml:"
    assert problem in result.err
    assert f"`drillbook abandon {run_id}` and release again" in result.err
    assert "internal error" not in result.err
    assert not by_name(shop.events(run_id), "run_closed")  # left as it was, for abandon
    assert shop.run("abandon", run_id).code == 0


def test_a_resume_that_cannot_close_the_run_it_continues_leaves_it_open(shop: Project) -> None:
    run_id = interrupted_release(shop)
    before = shop.journals()
    # Every file may grow to the interrupted run's journal's size, and no further: that journal
    # refuses its `run_closed`, as on a disk that just filled, while a new one could start.
    cap = (shop.root / ".drillbook" / "journal" / f"{run_id}.jsonl").stat().st_size

    refused = shop.run("resume", run_id, file_size_limit=cap)

    assert refused.code == 3, refused
    assert f"cannot write the journal {shop.root}/.drillbook/journal/{run_id}.jsonl" in refused.err
    assert "internal error" not in refused.err
    # The resume's own journal, opened first, is gone again: no run of it ever began.
    assert shop.journals() == before
    assert not by_name(shop.events(run_id), "run_closed")  # still open, to be resumed
    resumed = shop.run("resume", run_id)
    assert resumed.code == 0, resumed
    assert by_name(shop.events(run_id), "run_closed")[0]["how"] == "resumed"


def test_a_refused_resume_leaves_the_run_resumable(shop: Project) -> None:
    run_id = interrupted_release(shop)
    scratch = shop.root / "scratch.txt"
    scratch.write_text("dirty\n")

    refused = shop.run("resume", run_id)

    assert refused.code == 3, refused
    assert "scratch.txt" in refused.err
    assert not by_name(shop.events(run_id), "run_closed")
    scratch.unlink()
    resumed = shop.run("resume", run_id)
    assert resumed.code == 0, resumed


def test_resume_or_abandon_of_a_run_still_going_is_refused(shop: Project) -> None:
    first = start_slow_release(shop)
    run_id = shop.journals()[-1].stem

    for action in ("resume", "abandon"):
        result = shop.run(action, run_id)
        assert result.code == 75, result
        assert f"pid {first.pid}" in result.err

    assert not by_name(shop.events(run_id), "run_closed")
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=GRACE + 5)
    assert first.returncode == 143


def test_tag_waits_for_no_release_it_would_race(shop: Project) -> None:
    # A release that is running may fail and roll back: a tag made beside it would mark a
    # release that never was.
    first = start_slow_release(shop)
    result = shop.run("tag", "--version", "1.0.0")
    assert result.code == 75, result
    assert f"pid {first.pid}" in result.err
    assert shop.tags() == []
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=GRACE + 5)


def test_tag_waits_for_a_release_on_another_environment_too(shop: Project) -> None:
    # A production release makes the same tag, and it too may fail and roll back.
    first = shop.start(
        "release", "--env", "production", "--yes", "--version", "1.0.0", FIXTURE_SLOW_GATE="unit"
    )
    shop.read_until(first, "unit: sleeping")

    result = shop.run("tag", "--version", "1.0.0")

    assert result.code == 75, result
    assert f"pid {first.pid}" in result.err
    assert "for 'production'" in result.err
    assert shop.tags() == []
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=GRACE + 5)
    assert first.returncode == 143
    # The refused tag holds none of the locks it took before it met the held one.
    assert not list((shop.root / ".drillbook" / "locks").glob("*.lock"))


def test_resume_refuses_when_head_moved_since_the_gates_judged_it(shop: Project) -> None:
    run_id = interrupted_release(shop)
    judged = shop.events(run_id)[0]["head"]
    (shop.root / "README").write_text("a change lint never saw\n")
    shop.git("add", "README")  # only it: the journal stays drillbook's, outside git
    shop.git("commit", "-q", "-m", "after the interruption")

    result = shop.run("resume", run_id)

    assert result.code == 3, result
    assert f"HEAD moved since run {run_id} started: its finished steps judged {judged[:9]}" in (
        result.err
    )
    assert f"drillbook abandon {run_id}" in result.err
    assert shop.tags() == []
    # Refused before anything: the run can still be resumed from the commit it judged.
    shop.git("checkout", "-q", judged)
    assert shop.run("resume", run_id).code == 0
    assert shop.git("rev-parse", "v1.0.0^{commit}") == judged


def test_a_second_signal_exits_at_once(shop: Project) -> None:
    # The gate ignores TERM, so the first signal waits out the grace period before KILL.
    proc = start_slow_release(shop, FIXTURE_IGNORE_TERM="1")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=GRACE)

    assert time.monotonic() - began < 1.5
    assert proc.returncode == 143
    until = time.monotonic() + 2
    while shop.leftovers() and time.monotonic() < until:
        time.sleep(0.02)
    assert not shop.leftovers()
    # Said on the way out, since nothing else is: the run is left as a killed one is.
    run_id = shop.journals()[-1].stem
    assert "drillbook release: a second SIGTERM: stopped at once" in err
    assert f"run {run_id} is left unfinished" in err
    assert f"`drillbook resume {run_id}` continues it" in err
    refused = shop.run("release", "--version", "1.0.0")
    assert refused.code == 3, refused
    assert run_id in refused.err


def test_ctrl_c_while_the_tag_is_signed_interrupts_the_release_and_resume_tags(
    shop: Project,
) -> None:
    # git signs the tag with a gpg that waits for a passphrase; Ctrl-C reaches the whole
    # foreground group, git and gpg included, so git fails: that is the interruption, not a
    # failed tag to roll back.
    shop.sign_tags_slowly()
    proc = shop.start("release", "--version", "1.0.0", new_session=True)
    shop.wait_for_signing(proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=GRACE + 5)

    assert proc.returncode == 130, out + err
    assert "rolling back" not in out
    assert f"drillbook resume {shop.journals()[-1].stem}" in err
    events = shop.events()
    tag = finished(events, "tag")
    assert tag["outcome"] == "interrupted", tag
    assert "SIGINT" in tag["detail"]
    assert not by_name(events, "rollback_started")
    assert events[-1]["outcome"] == "interrupted"
    assert shop.tags() == []
    assert shop.served_version() == "1.0.0"

    run_id = shop.journals()[-1].stem
    resumed = shop.run("resume", run_id, FIXTURE_GPG_SLEEP="0")
    assert resumed.code == 0, resumed
    assert started_steps(shop.events()) == ["tag", "rollback-note"]
    assert shop.tags() == ["v1.0.0"]


def gate_pids(shop: Project) -> list[int]:
    """The pids of the sleeping gate (`gate.py unit`), wherever its drillbook is."""
    return [int(line.split(":", 1)[0]) for line in shop.leftovers() if "gate.py unit" in line]


def killed_mid_gate(shop: Project) -> tuple[str, list[int]]:
    """A release SIGKILLed while its unit gate sleeps: its run id and the gate's pids."""
    proc = start_slow_release(shop)
    run_id = shop.journals()[-1].stem
    proc.kill()
    proc.communicate()
    # SIGKILL cannot be handled: the gate lives on, in a process group of its own.
    orphans = gate_pids(shop)
    assert orphans, shop.leftovers()
    return run_id, orphans


def test_after_sigkill_the_next_release_names_what_is_left_running(shop: Project) -> None:
    run_id, orphans = killed_mid_gate(shop)
    events = shop.events(run_id)
    assert events[-2]["event"] == "step_started"
    assert events[-1]["event"] == "command_started"
    assert events[-1]["step"] == "unit"
    assert events[-1]["pgid"] in orphans

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 3, result
    assert run_id in result.err
    assert f"its unit (pid {orphans[0]}) is still running" in result.err
    assert f"drillbook resume {run_id}" in result.err
    assert "it stops what the run left running first" in result.err
    assert f"drillbook abandon {run_id}" in result.err
    assert shop.served_version() is None
    assert gate_pids(shop) == orphans  # a refused run touches nothing
    listed = shop.run("resume")
    assert listed.code == 0, listed
    assert f"{run_id}  open" in listed.out
    assert f"its unit (pid {orphans[0]}) is still running" in listed.out

    resumed = shop.run("resume", run_id)
    assert resumed.code == 0, resumed
    assert f"stopping what run {run_id} left running: unit (pid {orphans[0]})" in resumed.out
    assert gate_pids(shop) == []
    new = shop.events()
    [stopped] = by_name(new, "leftovers_stopped")
    assert stopped["of_run"] == run_id
    assert stopped["stopped"] == [{"step": "unit", "pgid": orphans[0], "pids": orphans}]
    assert started_steps(new)[0] == "unit"
    assert shop.served_version() == "1.0.0"


def test_after_sigkill_during_the_rollback_the_next_run_says_to_abandon_not_resume(
    released: Project,
) -> None:
    shop = released
    proc = shop.start("release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0", FIXTURE_HANG="1.0.0")
    shop.read_until(proc, "rollback-deploy │ deploying 1.0.0")
    proc.kill()
    proc.communicate()
    run_id = shop.journals()[-1].stem

    result = shop.run("rollback", "--env", "staging")

    assert result.code == 3, result
    assert f"run {run_id} (release of shop 1.1.0 on staging" in result.err
    assert f"drillbook resume {run_id}" not in result.err
    assert "it was rolling staging back to 1.0.0, so it cannot be resumed" in result.err
    assert f"`drillbook abandon {run_id}` closes it" in result.err
    assert shop.run("resume", run_id).code == 3  # as it said
    assert shop.run("abandon", run_id).code == 0
    assert shop.run("rollback", "--env", "staging", "--to", "1.0.0").code == 0
    assert shop.served_version() == "1.0.0"
    assert not shop.strays()


def test_after_sigkill_of_a_deploy_the_next_run_says_to_abandon_it(released: Project) -> None:
    shop = released
    proc = shop.start("deploy", "--version", "1.1.0", FIXTURE_HANG="1.1.0")
    shop.read_until(proc, "deploying 1.1.0")
    proc.kill()
    proc.communicate()
    run_id = shop.journals()[-1].stem

    result = shop.run("deploy", "--version", "1.1.0")

    assert result.code == 3, result
    assert f"drillbook resume {run_id}" not in result.err  # only a release resumes
    assert f"check staging, then `drillbook abandon {run_id}` closes it" in result.err
    assert "then run the deploy again if it is still needed" in result.err
    assert "`drillbook deploy --env staging --version 1.0.0` puts back 1.0.0" in result.err
    assert shop.run("abandon", run_id).code == 0
    assert shop.run("deploy", "--version", "1.1.0").code == 0
    assert not shop.strays()


def test_a_resume_stopped_before_its_first_step_is_resumed_without_repeating_any(
    shop: Project,
) -> None:
    # The gate ignores TERM, so the resume waits out the grace period to stop it: a signal
    # then stops the resume before it has journaled a step of its own.
    proc = start_slow_release(shop, FIXTURE_IGNORE_TERM="1")
    killed = shop.journals()[-1].stem
    proc.kill()
    proc.communicate()
    resume = shop.start("resume", killed)
    shop.read_until(resume, f"stopping what run {killed} left running")
    resume.send_signal(signal.SIGINT)
    out, err = resume.communicate(timeout=GRACE + 10)
    assert resume.returncode == 130, out + err
    stopped = shop.journals()[-1].stem
    assert not started_steps(shop.events(stopped))

    result = shop.run("resume", stopped)

    assert result.code == 0, result
    new = shop.events()
    # preflight and lint finished in the first run: never run again.
    assert [e["step"] for e in by_name(new, "step_skipped")] == ["preflight", "lint"]
    assert started_steps(new)[0] == "unit"


def test_abandon_after_sigkill_stops_what_the_run_left_running(shop: Project) -> None:
    run_id, orphans = killed_mid_gate(shop)

    result = shop.run("abandon", run_id)

    assert result.code == 0, result
    assert f"stopping what run {run_id} left running: unit (pid {orphans[0]})" in result.out
    assert gate_pids(shop) == []
    [closed] = by_name(shop.events(run_id), "run_closed")
    assert closed["how"] == "abandoned"
    assert closed["stopped"] == [{"step": "unit", "pgid": orphans[0], "pids": orphans}]
    # And the next release runs.
    assert shop.run("release", "--version", "1.0.0").code == 0


def test_a_copy_of_a_killed_runs_journal_is_not_a_second_run_to_close(shop: Project) -> None:
    # A backup made beside it, named as run ids may be: the run is the original's.
    run_id, _ = killed_mid_gate(shop)
    folder = shop.root / ".drillbook" / "journal"
    copy = folder / f"{run_id}-copy.jsonl"
    copy.write_bytes((folder / f"{run_id}.jsonl").read_bytes())

    listed = shop.run("resume")
    closed = shop.run("abandon", run_id)
    again = shop.run("release", "--version", "1.0.0")

    assert listed.code == 0, listed
    assert f"{run_id}  open" in listed.out
    assert f"{run_id}-copy" not in listed.out
    assert closed.code == 0, closed
    assert f"abandoned {run_id}" in closed.out
    assert again.code == 0, again
    assert (
        copy.read_bytes() == (folder / f"{run_id}.jsonl").read_bytes().rsplit(b"\n", 2)[0] + b"\n"
    )


def test_abandon_warns_that_it_takes_over_the_killed_runs_lock(shop: Project) -> None:
    run_id, _ = killed_mid_gate(shop)
    assert (shop.root / ".drillbook" / "locks" / "staging.lock").exists()

    result = shop.run("abandon", run_id)

    assert result.code == 0, result
    assert f"warning: took over the lock for 'staging' from run {run_id}" in result.err
    assert "its process is gone" in result.err
    assert not (shop.root / ".drillbook" / "locks" / "staging.lock").exists()


def test_a_command_left_running_that_exits_on_its_own_is_not_stopped_twice(shop: Project) -> None:
    run_id, orphans = killed_mid_gate(shop)
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    until = time.monotonic() + 5
    while gate_pids(shop) and time.monotonic() < until:
        time.sleep(0.02)

    result = shop.run("release", "--version", "1.0.0")
    assert result.code == 3, result
    assert "still running" not in result.err
    abandoned = shop.run("abandon", run_id)
    assert abandoned.code == 0, abandoned
    assert "stopping" not in abandoned.out
    [closed] = by_name(shop.events(run_id), "run_closed")
    assert closed["stopped"] is None


def state(pid: int) -> str:
    """The state letter of process `pid` (R, S, T, Z, ...)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2]


def waits_on_flock(pid: int, path: Path) -> bool:
    """Whether process `pid` is blocked in flock(2) on the file at `path` (Linux /proc/locks).

    A blocked request reads `N: -> FLOCK ADVISORY WRITE PID MAJ:MIN:INODE START END`.
    """
    inode = str(path.stat().st_ino)
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" not in fields:
            continue
        at = fields.index("->")
        if fields[at + 4 : at + 5] == [str(pid)] and fields[at + 5].rsplit(":", 1)[-1] == inode:
            return True
    return False


@pytest.mark.parametrize(("second", "first"), [("resume", "abandon"), ("abandon", "resume")])
def test_a_run_closed_while_a_resume_or_abandon_waits_for_its_lock_is_left_closed(
    shop: Project, second: str, first: str
) -> None:
    # Two people at once: `second` has read the run as open and waits for the lock while
    # `first` closes the run. Held at the lock's guard and stopped there, `second` goes on
    # only once `first` is done: it must see that the run is closed, and do nothing.
    run_id, _ = killed_mid_gate(shop)
    guard = shop.root / ".drillbook" / "locks" / ".staging.lock.guard"
    fd = os.open(guard, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        waiting = shop.start(second, run_id)
        until = time.monotonic() + 30
        while not waits_on_flock(waiting.pid, guard):
            assert waiting.poll() is None, waiting.communicate()
            assert time.monotonic() < until, "it never reached the lock"
            time.sleep(0.02)
        waiting.send_signal(signal.SIGSTOP)
        # Stopped, it has left flock(2) (to take it again when continued): only then may the
        # guard go, or it would take the guard before it stops.
        while state(waiting.pid) != "T" or waits_on_flock(waiting.pid, guard):
            assert time.monotonic() < until, "it never stopped"
            time.sleep(0.02)
    finally:
        os.close(fd)
    try:
        done = shop.run(first, run_id)
        assert done.code == 0, done
        served = shop.served_version()
    finally:
        waiting.send_signal(signal.SIGCONT)
    out, err = waiting.communicate(timeout=60)

    assert waiting.returncode == 3, out + err
    closed_how = "abandoned" if first == "abandon" else "resumed"
    assert f"run {run_id} was {closed_how}" in err
    assert "nothing was done" in err
    assert [e["how"] for e in by_name(shop.events(run_id), "run_closed")] == [closed_how]
    assert shop.served_version() == served
    assert len(shop.journals()) == (2 if first == "resume" else 1)


# --- the lock -------------------------------------------------------------------------------------


def test_a_second_run_during_a_first_exits_75_naming_the_holder(shop: Project) -> None:
    first = start_slow_release(shop)
    run_id = shop.journals()[-1].stem

    second = shop.run("release", "--version", "1.0.0")

    assert second.code == 75, second
    assert run_id in second.err
    assert f"pid {first.pid}" in second.err
    assert socket.gethostname() in second.err
    assert "started 20" in second.err
    assert len(shop.journals()) == 1
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=GRACE + 5)
    assert first.returncode == 143


def test_a_run_still_going_is_shown_as_running_not_as_killed(shop: Project) -> None:
    # An unfinished journal whose run holds the lock is a run still going: history, the docs
    # and the list of resumable runs must not send the person on call to resume or abandon it.
    first = start_slow_release(shop)
    run_id = shop.journals()[-1].stem

    table = shop.run("history")
    listed = shop.run("resume")
    [entry] = json.loads(shop.run("history", "--format", "json").out)

    assert table.code == 0, table
    assert f"running (pid {first.pid})" in table.out
    assert "killed" not in table.out
    assert f"drillbook resume {run_id}" not in table.out
    assert entry["outcome"] == f"running (pid {first.pid})"
    assert listed.code == 0, listed
    assert f"{run_id}  running" in listed.out
    assert f"pid {first.pid} holds the lock of staging" in listed.out
    assert "still running" not in listed.out
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=GRACE + 5)
    assert "interrupted" in shop.run("history").out


def test_a_plan_says_the_lock_is_held_and_neither_waits_nor_fails(shop: Project) -> None:
    assert "lock: free" in shop.run("plan", "--version", "1.0.0").out
    first = start_slow_release(shop)
    run_id = shop.journals()[-1].stem

    text = shop.run("plan", "--version", "1.0.0")
    dry = shop.run("release", "--dry-run", "--version", "1.0.0", "--format", "json")

    assert text.code == 0, text
    assert f"lock: held by run {run_id} (pid {first.pid} on host {socket.gethostname()}" in (
        text.out
    )
    assert "a release now would exit 75" in text.out
    assert dry.code == 0, dry
    [lock] = [p for p in json.loads(dry.out)["probes"] if p["probe"] == "lock"]
    assert lock["ok"] is False
    assert run_id in lock["found"]
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=GRACE + 5)


def test_a_dead_holders_lock_is_taken_over_with_a_warning(shop: Project) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    locks = shop.root / ".drillbook" / "locks"
    locks.mkdir(parents=True)
    record = {
        "run": "20260101T000000Z-dead00",
        "pid": gone.pid,
        "host": socket.gethostname(),
        "started": "2026-01-01T00:00:00Z",
        "argv": ["drillbook", "release"],
    }
    (locks / "staging.lock").write_text(json.dumps(record))

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 0, result
    assert "took over the lock" in result.err
    assert "20260101T000000Z-dead00" in result.err
    assert not (locks / "staging.lock").exists()


def test_the_journal_records_whose_lock_the_run_took_over(shop: Project) -> None:
    # The warning goes to a console that nobody keeps; the journal is what is read later.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    locks = shop.root / ".drillbook" / "locks"
    locks.mkdir(parents=True)
    record = {
        "run": "20260101T000000Z-dead00",
        "pid": gone.pid,
        "host": socket.gethostname(),
        "started": "2026-01-01T00:00:00Z",
        "argv": ["drillbook", "release"],
    }
    (locks / "staging.lock").write_text(json.dumps(record))
    assert shop.run("release", "--version", "1.0.0").code == 0
    (locks / "staging.lock").write_text('{"run": "2026')

    result = shop.run("release", "--version", "1.1.0")

    assert result.code == 0, result
    first, second = (shop.events(path.stem)[0] for path in shop.journals())
    assert first["lock_taken_over"] == {
        "run": "20260101T000000Z-dead00",
        "pid": gone.pid,
        "host": socket.gethostname(),
        "started": "2026-01-01T00:00:00Z",
        "why": "its process is gone",
    }
    assert second["lock_taken_over"] == {"corrupt": "not valid JSON"}


@SHORT_DEPLOY
def test_a_lock_that_cannot_be_released_does_not_hide_how_the_run_ended(
    released: Project,
) -> None:
    # The lock's folder is gone by the end of the run (removed by hand, or a disk remounted
    # read-only): the release rolled back, and says so, rather than "nothing was started".
    shop = released
    proc = shop.start("release", "--version", "1.1.0", FIXTURE_HANG="1.1.0")
    shop.read_until(proc, "deploying 1.1.0")
    for path in sorted((shop.root / ".drillbook" / "locks").iterdir()):
        path.unlink()
    (shop.root / ".drillbook" / "locks").rmdir()
    out, err = proc.communicate(timeout=GRACE + 60)

    assert proc.returncode == 4, out + err
    assert "staging was rolled back to 1.0.0" in out
    assert "cannot create the lock" not in err
    assert by_name(shop.events(), "run_finished")[-1]["exit"] == 4
    assert shop.served_version() == "1.0.0"


# --- the journal cannot be written ----------------------------------------------------------------


def test_a_journal_that_cannot_be_written_stops_the_run_before_it_changes_anything(
    shop: Project,
) -> None:
    # The lint gate prints 40 long lines, so its step_finished event (with the 8 KiB tail of
    # its output) is the first that does not fit under the file size limit: the disk is
    # "full" from there on.
    result = shop.run(
        "release", "--version", "1.0.0", file_size_limit=8 * 1024, FIXTURE_BIG_OUTPUT="lint"
    )

    assert result.code == 3, result
    assert "cannot write the journal" in result.err
    assert shop.served_version() is None
    assert not (shop.root / "var" / "staging" / "version").exists()
    assert shop.tags() == []
    # What was written stays readable: whole lines parse; a torn last line is all that is lost.
    [journal] = shop.journals()
    lines = journal.read_bytes().split(b"\n")
    events = [json.loads(line) for line in lines[:-1]]
    assert events[0]["event"] == "run_started"
    assert "deploy" not in started_steps(events)
    # The lock was released: the next run (with room to write) goes ahead after a resume or
    # an abandon of the broken one.
    assert not (shop.root / ".drillbook" / "locks" / "staging.lock").exists()
    run_id = journal.stem
    assert shop.run("abandon", run_id).code == 0
    assert shop.run("release", "--version", "1.0.0").code == 0


def test_a_journal_that_fills_up_at_the_last_event_says_the_run_looks_killed(
    shop: Project,
) -> None:
    # Measure where run_finished starts in a whole release, then release again with the
    # journal's file capped in the middle of that line: only the end cannot be recorded.
    assert shop.run("release", "--version", "1.0.0").code == 0
    journal = shop.journals()[-1].read_bytes()
    cap = journal.index(b'"event":"run_finished"')
    cap = journal.rindex(b"\n", 0, cap) + 1 + 90
    shop.git("tag", "-d", "v1.0.0")
    (shop.root / "notes" / "shop-1.0.0-rollback.md").unlink()

    result = shop.run("release", "--version", "1.0.0", file_size_limit=cap)

    assert result.code == 0, result
    assert "release 1.0.0 of shop is done on staging" in result.out
    run_id = shop.journals()[-1].stem
    assert "warning: cannot write the journal" in result.err
    assert f"it does not record that run {run_id} ended (ok)" in result.err
    assert f"`drillbook abandon {run_id}` closes it" in result.err
    events = [json.loads(line) for line in shop.journals()[-1].read_bytes().split(b"\n")[:-1]]
    assert events[-1]["event"] == "step_finished"
    assert events[-1]["step"] == "rollback-note"
    # As it said: a run that changes staging refuses, and abandon closes the run.
    refused = shop.run("deploy", "--version", "1.0.0")
    assert refused.code == 3, refused
    assert run_id in refused.err
    assert shop.run("abandon", run_id).code == 0
    assert shop.run("deploy", "--version", "1.0.0").code == 0


@pytest.mark.parametrize(
    "args", [("release", "--version", "1.0.0"), ("deploy", "--version", "1.0.0"), ("history",)]
)
def test_a_file_in_place_of_the_drillbook_folder_refuses_as_the_world_saying_no(
    shop: Project, args: tuple[str, ...]
) -> None:
    # Not bad input (exit 2): the project's own folder cannot be used, as when it cannot be
    # written (exit 3, nothing changed), whichever command meets it first.
    (shop.root / ".drillbook").write_text("not a folder\n")

    result = shop.run(*args)

    assert result.code == 3, result
    assert ".drillbook/journal" in result.err
    assert "Not a directory" in result.err
    assert "hint: " in result.err
    assert shop.served_version() is None
    assert shop.tags() == []


@pytest.mark.parametrize(
    "args", [("release", "--version", "1.0.0"), ("deploy", "--version", "1.0.0"), ("history",)]
)
def test_a_journal_folder_linked_to_nothing_is_named_not_called_empty_or_full(
    shop: Project, args: tuple[str, ...]
) -> None:
    # The journals moved to another disk that is not mounted: history must not say "no
    # runs", and a run must not say "File exists" and "free disk space".
    (shop.root / ".drillbook").mkdir()
    link = shop.root / ".drillbook" / "journal"
    link.symlink_to(shop.home / "unmounted" / "journal")

    result = shop.run(*args)

    assert result.code == 3, result
    assert f"{link} is a symbolic link to {shop.home / 'unmounted' / 'journal'}" in result.err
    assert "which does not exist; expected a folder" in result.err
    assert f"or remove the link {link}" in result.err
    assert "File exists" not in result.err
    assert shop.served_version() is None
    assert shop.tags() == []


@pytest.mark.parametrize("folder", [".drillbook", ".drillbook/journal"])
def test_a_drillbook_folder_on_a_read_only_mount_says_so_not_free_disk_space(
    shop: Project, folder: str
) -> None:
    # Root writes through every permission: a mount read-only is what refuses it. The mount is
    # made in a mount namespace of the run's own, seen by nothing else on the machine.
    (shop.root / folder).mkdir(parents=True)
    mount = f"mount -t tmpfs -o ro tmpfs {shop.root / folder}"
    script = f"{mount} && exec {DRILLBOOK} deploy --version 1.0.0"
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    probe = subprocess.run([*argv[:4], "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace here: {probe.stderr.decode().strip()}")

    result = subprocess.run(
        argv, cwd=shop.root, env=shop.env, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 3, result
    assert "Read-only file system" in result.stderr
    assert "is mounted read-only: remount it read-write" in result.stderr
    assert "free disk space" not in result.stderr
    assert "the free space on its disk" not in result.stderr
    assert shop.served_version() is None


def test_only_the_service_runs_after_a_release(released: Project) -> None:
    shop = released
    pid = int((shop.root / "var" / "staging" / "server.pid").read_text())
    [server] = shop.leftovers()
    assert server.startswith(f"{pid}:")
    assert not shop.strays()


def run_with_stdout(shop: Project, stdout: int, *args: str) -> subprocess.CompletedProcess[str]:
    """`drillbook ARGS` in the project with its stdout on the file descriptor given."""
    return subprocess.run(
        [str(DRILLBOOK), *args],
        cwd=shop.root,
        env=shop.env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_release_whose_reader_went_away_still_finishes(shop: Project) -> None:
    # `drillbook release | head -3`: the reader is gone before the release is done. Here it is
    # gone from the start, so the first line printed already finds no one to read it.
    read, write = os.pipe()
    os.close(read)
    try:
        done = run_with_stdout(shop, write, "release", "--version", "1.0.0")
    finally:
        os.close(write)

    assert done.returncode == 0, done.stderr
    assert "internal error" not in done.stderr
    assert shop.tags() == ["v1.0.0"]
    assert shop.served_version() == "1.0.0"
    events = shop.events()
    assert by_name(events, "run_finished")[-1]["outcome"] == "ok"
    assert "tag" in started_steps(events)


def test_a_release_whose_stdout_is_full_finishes_and_says_its_output_is_incomplete(
    shop: Project,
) -> None:
    with Path("/dev/full").open("w") as full:
        done = run_with_stdout(shop, full.fileno(), "release", "--version", "1.0.0")

    # The release was made: its exit code says so (3 would say nothing changed), and the
    # message that its output is incomplete is on stderr.
    assert done.returncode == 0, done.stderr
    assert "internal error" not in done.stderr
    assert "its output to stdout could not be written (No space left on device)" in done.stderr
    assert shop.tags() == ["v1.0.0"]
    assert by_name(shop.events(), "run_finished")[-1]["outcome"] == "ok"


@pytest.mark.parametrize("command", ["drillbook", "invoke"])
def test_a_release_to_a_non_blocking_pipe_read_slowly_loses_no_line(
    shop: Project, command: str
) -> None:
    # A pipe set non-blocking by another program (a CI runner, a Node.js parent) and read
    # slowly: Python dropped what did not fit without a word, and the release, its "done"
    # line included, showed its first 64 KiB and exited 0.
    (shop.root / "tasks.py").write_text("from drillbook.tasks import namespace as ns\n")
    shop.commit("tasks")
    read, write = os.pipe()
    os.set_blocking(write, False)
    proc = subprocess.Popen(
        [str(DRILLBOOK.parent / command), "release", "--version", "1.0.0"],
        cwd=shop.root,
        env={**shop.env, "FIXTURE_BIG_OUTPUT": "lint"},
        stdout=write,
        stderr=subprocess.PIPE,
    )
    os.close(write)
    time.sleep(0.5)  # the gate's 160 KB of output fill the pipe before anyone reads
    with os.fdopen(read, "rb") as reader:
        out = reader.read().decode()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.count(" " + "x" * 4000 + "\n") == 40
    assert "release 1.0.0 of shop is done on staging" in out


def test_a_release_with_stdout_closed_finishes_says_so_and_its_journal_stays_whole(
    shop: Project,
) -> None:
    # `>&-`: descriptor 1 is free, and the first file drillbook opens would take it.
    done = subprocess.run(
        ["sh", "-c", 'exec "$0" "$@" >&-', str(DRILLBOOK), "release", "--version", "1.0.0"],
        cwd=shop.root,
        env=shop.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "internal error" not in done.stderr
    assert "stdout was closed before drillbook started" in done.stderr
    assert shop.tags() == ["v1.0.0"]
    assert by_name(shop.events(), "run_finished")[-1]["outcome"] == "ok"  # every line JSON


def test_a_json_release_with_stderr_closed_writes_only_its_summary_to_stdout(
    shop: Project,
) -> None:
    # `2>&-`: the progress meant for stderr has nowhere to go, and never goes to stdout.
    done = subprocess.run(
        ["sh", "-c", 'exec "$0" "$@" 2>&-', str(DRILLBOOK), "release", "--format", "json"],
        cwd=shop.root,
        env=shop.env,
        stdout=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    summary = json.loads(done.stdout)
    assert summary["outcome"] == "ok"
    assert summary["version"] == "1.2.0"
