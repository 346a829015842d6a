"""Pushing the release tag: interruptible, resumable, and never a reason to release again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _project import API_TOKEN, Project


def by_name(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e.get("event") == name]


def bare_remote(shop: Project, tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    return bare


def remote_tags(bare: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(bare), "tag", "--list"], capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def hanging_origin(shop: Project, tmp_path: Path) -> Path:
    """An ssh origin for `shop` whose "ssh" never answers and keeps a child holding the pipes;
    the fake ssh, for GIT_SSH."""
    fake_ssh = tmp_path / "hanging-ssh"
    fake_ssh.write_text("#!/bin/sh\nsleep 60 &\nwait\n")
    fake_ssh.chmod(0o755)
    shop.git("remote", "add", "origin", "ssh://git@example.invalid/x.git")
    return fake_ssh


def test_a_push_that_hangs_stops_at_ctrl_c_and_resume_pushes_it(
    shop: Project, tmp_path: Path
) -> None:
    fake_ssh = hanging_origin(shop, tmp_path)
    proc = shop.start("release", "--version", "1.0.0", "--push", GIT_SSH=str(fake_ssh))
    shop.read_until(proc, "push tag v1.0.0 to origin", timeout=60)
    time.sleep(0.5)  # git and the fake ssh are running
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)

    assert proc.returncode == 130, out + err
    assert time.monotonic() - began < 5
    events = shop.events()
    push = [e for e in by_name(events, "step_finished") if e["step"] == "push"]
    assert push and push[0]["outcome"] == "interrupted"
    assert by_name(events, "command_started")[-1]["step"] == "push"
    assert not shop.strays(), shop.strays()
    run_id = shop.journals()[-1].stem
    tag_object = shop.git("rev-parse", "v1.0.0")

    # The remote comes back: resume does what is left, the push, and nothing twice.
    bare = bare_remote(shop, tmp_path)
    shop.git("remote", "set-url", "origin", str(bare))
    result = shop.run("resume", run_id)

    assert result.code == 0, result
    new = shop.events()
    assert [e["step"] for e in by_name(new, "step_started")] == ["push"]
    assert remote_tags(bare) == ["v1.0.0"]
    assert shop.git("rev-parse", "v1.0.0") == tag_object
    assert "note: notes/shop-1.0.0-rollback.md" in result.out


def test_the_same_release_with_push_twice_changes_nothing_the_second_time(
    shop: Project, tmp_path: Path
) -> None:
    bare = bare_remote(shop, tmp_path)
    shop.git("remote", "add", "origin", str(bare))
    first = shop.run("release", "--version", "1.0.0", "--push")
    assert first.code == 0, first
    journals = shop.journals()

    again = shop.run("release", "--version", "1.0.0", "--push")

    assert again.code == 0, again
    assert "already done on staging" in again.out
    assert "Nothing changed." in again.out
    assert shop.journals() == journals  # no run at all: no deploy, no gate
    assert remote_tags(bare) == ["v1.0.0"]


def test_a_release_done_but_for_its_push_only_pushes(shop: Project, tmp_path: Path) -> None:
    gone = tmp_path / "not-yet.git"
    shop.git("remote", "add", "origin", str(gone))
    failed = shop.run("release", "--version", "1.0.0", "--push")
    assert failed.code == 1, failed
    assert "the push failed; the tag stays local" in failed.out
    tag_object = shop.git("rev-parse", "v1.0.0")
    subprocess.run(["git", "init", "-q", "--bare", str(gone)], check=True)

    again = shop.run("release", "--version", "1.0.0", "--push")

    assert again.code == 0, again
    assert "its tag is not on origin yet" in again.out
    new = shop.events()
    assert new[0]["action"] == "push"
    assert [e["step"] for e in by_name(new, "step_started")] == ["push"]
    assert not by_name(new, "deployed")
    assert remote_tags(gone) == ["v1.0.0"]
    assert shop.git("rev-parse", "v1.0.0") == tag_object


def test_tag_by_hand_is_a_run_with_its_journal(shop: Project, tmp_path: Path) -> None:
    bare = bare_remote(shop, tmp_path)
    shop.git("remote", "add", "origin", str(bare))

    result = shop.run("tag", "--version", "1.0.0", "--push")

    assert result.code == 0, result
    events = shop.events()
    assert events[0]["action"] == "tag"
    tagged = by_name(events, "tagged")[0]
    assert (tagged["tag"], tagged["state"]) == ("v1.0.0", "created")
    assert by_name(events, "pushed")[0]["tag"] == "v1.0.0"
    assert events[-1]["event"] == "run_finished" and events[-1]["exit"] == 0
    assert remote_tags(bare) == ["v1.0.0"]


def test_tag_push_again_says_origin_has_it_and_pushes_nothing(
    shop: Project, tmp_path: Path
) -> None:
    bare = bare_remote(shop, tmp_path)
    shop.git("remote", "add", "origin", str(bare))
    assert shop.run("tag", "--version", "1.0.0", "--push").code == 0

    again = shop.run("tag", "--version", "1.0.0", "--push")

    assert again.code == 0, again
    assert "origin already has v1.0.0; nothing was pushed" in again.out
    assert "pushed v1.0.0" not in again.out
    assert by_name(shop.events(), "pushed")[0]["already"] is True
    assert remote_tags(bare) == ["v1.0.0"]


def test_tag_without_a_version_is_refused_not_guessed(shop: Project) -> None:
    # The newest version in the runbook may be one whose release failed and rolled back: a tag
    # would call it released, and later rollbacks would go back to it.
    before = shop.snapshot()

    result = shop.run("tag")

    assert result.code == 2, result
    assert "tag needs --version VERSION" in result.err
    assert "drillbook tag --version 1.2.0" in result.err
    assert shop.tags() == []
    assert shop.snapshot() == before


def tag_on_origin_elsewhere(shop: Project, bare: Path, tag: str) -> str:
    """Someone else's `tag`, on a commit of their own, pushed to `bare`; that commit."""
    other = bare.parent / "someone-else"
    subprocess.run(["git", "clone", "-q", str(bare), str(other)], check=True, env=shop.env)
    who = ("-c", "user.name=Someone", "-c", "user.email=someone@example.com")
    for args in (
        (*who, "commit", "-q", "--allow-empty", "-m", "their work"),
        (*who, "tag", "-a", tag, "-m", "their release"),
        ("push", "-q", "origin", f"refs/tags/{tag}"),
    ):
        subprocess.run(["git", "-C", str(other), *args], check=True, env=shop.env)
    return subprocess.run(
        ["git", "-C", str(other), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_a_tag_on_another_commit_on_origin_refuses_the_push_before_the_first_step(
    shop: Project, tmp_path: Path
) -> None:
    bare = bare_remote(shop, tmp_path)
    shop.git("remote", "add", "origin", str(bare))
    shop.git("push", "-q", "origin", "main")
    theirs = tag_on_origin_elsewhere(shop, bare, "v1.0.0")

    planned = shop.run("plan", "--version", "1.0.0", "--push")
    released = shop.run("release", "--version", "1.0.0", "--push")
    tagged = shop.run("tag", "--version", "1.0.0", "--push")

    assert planned.code == 3, planned
    assert f"origin: v1.0.0 on {theirs[:9]}, not on HEAD" in planned.out
    for result in (released, tagged):
        assert result.code == 3, result
        assert f"origin already has tag v1.0.0 on {theirs[:9]}" in result.err
        assert "git push origin :refs/tags/v1.0.0" in result.err
    # Nothing changed: no run, no deploy, no local tag to take back.
    assert shop.journals() == []
    assert shop.served_version() is None
    assert shop.tags() == []


def test_a_done_release_is_not_called_pushed_when_origin_has_another_commit(
    shop: Project, tmp_path: Path
) -> None:
    bare = bare_remote(shop, tmp_path)
    shop.git("remote", "add", "origin", str(bare))
    assert shop.run("release", "--version", "1.0.0").code == 0
    journals = shop.journals()
    theirs = tag_on_origin_elsewhere(shop, bare, "v1.0.0")

    again = shop.run("release", "--version", "1.0.0", "--push")

    assert again.code == 3, again
    assert "pushed" not in again.out
    assert f"origin already has tag v1.0.0 on {theirs[:9]}" in again.err
    assert shop.journals() == journals


def test_plan_with_push_says_whether_origin_has_the_tag(shop: Project, tmp_path: Path) -> None:
    bare = bare_remote(shop, tmp_path)
    shop.git("remote", "add", "origin", str(bare))

    before = shop.run("plan", "--version", "1.0.0", "--push")
    assert shop.run("release", "--version", "1.0.0", "--push").code == 0
    after = shop.run("plan", "--version", "1.0.0", "--push")

    assert before.code == 0, before
    assert "ok origin: v1.0.0 absent; the push will send it" in before.out
    assert after.code == 0, after
    assert "ok origin: v1.0.0 on HEAD (pushed)" in after.out


def test_plan_with_push_to_an_origin_that_cannot_be_asked_exits_as_the_release_would(
    shop: Project, tmp_path: Path
) -> None:
    # The probe said "the push would fail" and the plan exited 0, as if the release would pass.
    shop.git("remote", "add", "origin", str(tmp_path / "gone.git"))

    planned = shop.run("plan", "--version", "1.0.0", "--push")
    dry = shop.run("release", "--version", "1.0.0", "--push", "--dry-run", "--format", "json")
    assert shop.journals() == []
    released = shop.run("release", "--version", "1.0.0", "--push")
    again = shop.run("plan", "--version", "1.0.0", "--push")

    assert planned.code == 1, planned
    assert "fail origin: cannot be asked" in planned.out
    assert (
        "the release would fail at its push: origin cannot be asked whether it has tag v1.0.0 ("
    ) in planned.err
    assert "runs its 8 other steps, then its push fails and the tag stays local" in planned.err
    assert "drillbook tag --version 1.0.0 --push" in planned.err
    assert dry.code == 1, dry
    assert json.loads(dry.out)["steps"][-1]["step"] == "push"
    # What the plan said: every step ran, then the push failed, and it exits 1.
    assert released.code == 1, released
    assert shop.tags() == ["v1.0.0"]
    assert shop.served_version() == "1.0.0"
    # Done but for the push: a release now only pushes, and that fails.
    assert again.code == 1, again
    assert "has only its push left, and that fails (exit 1)" in again.err


def test_ctrl_c_of_a_json_plan_waiting_on_origin_is_json_on_stdout(
    shop: Project, tmp_path: Path
) -> None:
    # A plan only reads: Ctrl-C stops it in the program, not in a run, and that end had no
    # JSON; the pipeline that asked for it read an empty stdout.
    hanging_origin(shop, tmp_path)
    asked = tmp_path / "asked"
    fake_ssh = tmp_path / "marking-ssh"
    fake_ssh.write_text(f"#!/bin/sh\ntouch '{asked}'\nsleep 60 &\nwait\n")
    fake_ssh.chmod(0o755)
    proc = shop.start(
        "plan", "--version", "1.0.0", "--push", "--format", "json", GIT_SSH=str(fake_ssh)
    )
    until = time.monotonic() + 20
    while not asked.exists():  # the plan asks origin, which never answers
        assert time.monotonic() < until, "origin was never asked"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)

    assert proc.returncode == 130, out + err
    data = json.loads(out)
    assert (data["task"], data["outcome"], data["exit"]) == ("plan", "interrupted", 130)
    assert data["retry_safe"] is True
    assert "interrupted (SIGINT)" in err
    assert shop.journals() == []


def refusing_hook(bare: Path, words: str) -> Path:
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\necho '{words}' >&2\nexit 1\n")
    hook.chmod(0o755)
    return hook


def test_tag_push_refused_by_origin_says_why_and_the_exact_command_that_retries(
    shop: Project, tmp_path: Path
) -> None:
    bare = bare_remote(shop, tmp_path)
    shop.git("remote", "add", "origin", str(bare))
    hook = refusing_hook(bare, "tags are frozen today, ask #release")

    refused = shop.run("tag", "--version", "1.0.0", "--push")

    assert refused.code == 1, refused
    assert "tags are frozen today, ask #release" in refused.err
    # Without --version, `tag` would make the newest release's tag (1.2.0) on this commit.
    assert "run `drillbook tag --version 1.0.0 --push` again" in refused.err
    failed = by_name(shop.events(), "push_failed")[0]
    assert "tags are frozen today" in failed["output_tail"]
    tag_object = shop.git("rev-parse", "v1.0.0")

    hook.unlink()
    again = shop.run("tag", "--version", "1.0.0", "--push")

    assert again.code == 0, again
    assert by_name(shop.events(), "tagged")[0]["state"] == "exists"
    assert remote_tags(bare) == ["v1.0.0"]
    assert shop.git("rev-parse", "v1.0.0") == tag_object


@pytest.mark.parametrize("task", ["tag", "release"])
def test_origins_words_cut_to_their_tail_leave_no_piece_of_a_secret(
    shop: Project, tmp_path: Path, task: str
) -> None:
    bare = bare_remote(shop, tmp_path)
    shop.git("remote", "add", "origin", str(bare))
    # Lines of tokens and nothing else, longer than the tail kept: its cut is inside one.
    hook = bare / "hooks" / "pre-receive"
    line = f"refused: {API_TOKEN * 6}"
    hook.write_text(f"#!/bin/sh\nfor i in $(seq 30); do echo '{line}' >&2; done\nexit 1\n")
    hook.chmod(0o755)

    refused = shop.run(task, "--version", "1.0.0", "--push")

    assert refused.code == 1, refused
    assert "remote: refused: ***" in refused.text
    # tag records origin's words in push_failed, release in the push step's end.
    failed = next(e for e in shop.events() if "refused" in e.get("output_tail", ""))
    for text in (refused.text, failed["output_tail"]):
        for said in (line for line in text.splitlines() if "*" in line):
            # After its last colon, a line holds only masks: no piece of a token cut in two.
            assert set(said.rsplit(":", 1)[-1].strip()) == {"*"}, said
    assert failed["output_tail"].count("remote: refused: ***") > 10


def test_a_failed_push_in_a_project_of_several_runbooks_names_the_service(
    shop: Project, tmp_path: Path
) -> None:
    (shop.root / "runbooks" / "other.yaml").write_text(
        (shop.root / "runbooks" / "shop.yaml")
        .read_text()
        .replace("service: shop", "service: other")
        .replace("drillbook: 1\n", 'drillbook: 1\ntag: "other-v{version}"\n')
    )
    shop.commit("a second service")
    bare = bare_remote(shop, tmp_path)
    shop.git("remote", "add", "origin", str(bare))
    refusing_hook(bare, "no")

    released = shop.run("release", "--service", "shop", "--version", "1.0.0", "--push")
    tagged = shop.run("tag", "--service", "shop", "--version", "1.0.0", "--push")

    assert released.code == 1, released
    assert "`drillbook tag --service shop --version 1.0.0 --push`" in released.out
    assert tagged.code == 1, tagged
    assert "`drillbook tag --service shop --version 1.0.0 --push`" in tagged.err


def test_the_suggested_push_still_works_after_head_moved_on(shop: Project, tmp_path: Path) -> None:
    gone = tmp_path / "not-yet.git"
    shop.git("remote", "add", "origin", str(gone))
    failed = shop.run("release", "--version", "1.0.0", "--push")
    assert failed.code == 1, failed
    assert "`drillbook tag --version 1.0.0 --push`" in failed.out
    released_commit = shop.git("rev-parse", "HEAD")
    tag_object = shop.git("rev-parse", "v1.0.0")
    shop.git("commit", "-q", "--allow-empty", "-m", "the next change lands")
    subprocess.run(["git", "init", "-q", "--bare", str(gone)], check=True)

    pushed = shop.run("tag", "--version", "1.0.0", "--push")

    assert pushed.code == 0, pushed
    assert "HEAD has moved on since, so it is pushed as it is" in pushed.out
    assert shop.git("rev-parse", "v1.0.0") == tag_object  # the same tag, not moved
    out = subprocess.run(
        ["git", "-C", str(gone), "rev-parse", "v1.0.0", "v1.0.0^{commit}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [tag_object, released_commit]
    tagged = by_name(shop.events(), "tagged")[0]
    assert (tagged["state"], tagged["commit"]) == ("exists", released_commit)

    # A tag no release made stays refused: it may be a mistake, not to be published.
    shop.git("tag", "-a", "v1.1.0", "-m", "by hand", released_commit)
    refused = shop.run("tag", "--version", "1.1.0", "--push")
    assert refused.code == 3, refused
    assert "tag v1.1.0 already exists on" in refused.err
    assert remote_tags(gone) == ["v1.0.0"]


def test_a_done_release_whose_push_fails_again_says_the_command_that_pushes_later(
    shop: Project, tmp_path: Path
) -> None:
    shop.git("remote", "add", "origin", str(tmp_path / "not-yet.git"))
    assert shop.run("release", "--version", "1.0.0", "--push").code == 1
    tag_object = shop.git("rev-parse", "v1.0.0")

    again = shop.run("release", "--version", "1.0.0", "--push")

    assert again.code == 1, again
    assert "Push it later with `drillbook tag --version 1.0.0 --push` (retry safe)" in again.out
    events = shop.events()
    assert events[0]["action"] == "push"
    assert by_name(events, "push_failed")[0]["tag"] == "v1.0.0"
    assert not by_name(events, "deployed")
    assert shop.git("rev-parse", "v1.0.0") == tag_object


def test_origin_having_the_tag_on_the_same_commit_is_a_push_already_done(
    shop: Project, tmp_path: Path
) -> None:
    # CI made and pushed a tag for this commit from its own clone; this clone has none.
    bare = bare_remote(shop, tmp_path)
    shop.git("remote", "add", "origin", str(bare))
    shop.git("tag", "-a", "v1.0.0", "-m", "made by CI")
    shop.git("push", "-q", "origin", "v1.0.0")
    shop.git("tag", "-d", "v1.0.0")
    theirs = shop.git("ls-remote", "origin", "refs/tags/v1.0.0").split()[0]

    result = shop.run("release", "--version", "1.0.0", "--push")

    assert result.code == 0, result
    push = next(e for e in by_name(shop.events(), "step_finished") if e["step"] == "push")
    assert push["outcome"] == "done"
    assert "origin already has v1.0.0 on" in push["detail"]
    assert shop.git("ls-remote", "origin", "refs/tags/v1.0.0").split()[0] == theirs


def test_plan_marks_a_push_that_origin_has_already_as_done(shop: Project, tmp_path: Path) -> None:
    bare = bare_remote(shop, tmp_path)
    shop.git("remote", "add", "origin", str(bare))
    shop.git("tag", "-a", "v1.0.0", "-m", "made and pushed by hand")
    shop.git("push", "-q", "origin", "v1.0.0")

    planned = shop.run("plan", "--version", "1.0.0", "--push", "--format", "json")

    assert planned.code == 0, planned
    push = next(s for s in json.loads(planned.out)["steps"] if s["step"] == "push")
    assert push["title"] == "push tag v1.0.0 to origin (origin has it on HEAD: done)"
    assert push["changes"] is False


def test_a_push_interrupted_then_head_moved_on_is_pushed_by_the_command_resume_names(
    shop: Project, tmp_path: Path
) -> None:
    fake_ssh = hanging_origin(shop, tmp_path)
    proc = shop.start("release", "--version", "1.0.0", "--push", GIT_SSH=str(fake_ssh))
    shop.read_until(proc, "push tag v1.0.0 to origin", timeout=60)
    shop.wait_for_event(lambda e: e.get("event") == "command_started" and e.get("step") == "push")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 130
    run_id = shop.journals()[-1].stem
    tag_object = shop.git("rev-parse", "v1.0.0")
    bare = bare_remote(shop, tmp_path)
    shop.git("remote", "set-url", "origin", str(bare))
    shop.git("commit", "-q", "--allow-empty", "-m", "the next change lands")

    resumed = shop.run("resume", run_id)

    assert resumed.code == 3, resumed
    assert f"where release run {run_id} made it" in resumed.err
    assert "git tag -d" not in resumed.err
    assert "to push the tag as it is: drillbook tag --version 1.0.0 --push" in resumed.err
    pushed = shop.run("tag", "--version", "1.0.0", "--push")
    assert pushed.code == 0, pushed
    assert remote_tags(bare) == ["v1.0.0"]
    assert shop.git("rev-parse", "v1.0.0") == tag_object


def test_tag_push_stopped_by_ctrl_c_says_so_in_the_journal_and_how_to_retry(
    shop: Project, tmp_path: Path
) -> None:
    fake_ssh = hanging_origin(shop, tmp_path)
    proc = shop.start("tag", "--version", "1.0.0", "--push", GIT_SSH=str(fake_ssh))
    shop.wait_for_event(lambda e: e.get("event") == "tagged", timeout=60, proc=proc)
    time.sleep(0.5)  # git push and the fake ssh are running
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)

    assert proc.returncode == 130, err
    assert "`drillbook tag --version 1.0.0 --push` pushes the same tag (retry safe)" in err
    events = shop.events()
    assert by_name(events, "push_interrupted")[0]["tag"] == "v1.0.0"
    assert events[-1]["outcome"] == "interrupted"
    assert not shop.strays(), shop.strays()


def test_tag_is_not_refused_for_what_only_a_release_needs(shop: Project) -> None:
    # A check that staging may not reach, and no staging config in this checkout: a release
    # to staging is refused, but a tag runs no check and reads no config.
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text().replace(
        "            - get: /feature\n",
        "            - get: https://status.example.com/shop\n"
        "              expect: {status: 200}\n"
        "            - get: /feature\n",
        1,
    )
    text = text.replace(
        "    config: config/production.env\n",
        "    config: config/production.env\n    allow_hosts: [status.example.com]\n",
    )
    runbook.write_text(text)
    shop.git("rm", "-q", "config/staging.env")
    shop.commit("a check for production's status page; staging's config kept elsewhere")

    refused = shop.run("release", "--version", "1.1.0")
    tagged = shop.run("tag", "--version", "1.1.0")

    assert refused.code in (2, 3), refused
    assert tagged.code == 0, tagged
    assert "created v1.1.0" in tagged.out
    assert shop.tags() == ["v1.1.0"]


def test_ctrl_c_while_tag_by_hand_is_signed_exits_130_not_as_refused(shop: Project) -> None:
    # Ctrl-C reaches git and the gpg it waits for; git fails because of it: an interruption.
    shop.sign_tags_slowly()
    proc = shop.start("tag", "--version", "1.0.0", new_session=True)
    shop.wait_for_signing(proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=20)

    assert proc.returncode == 130, out + err
    assert "interrupted by SIGINT while git made the tag v1.0.0" in err
    assert "git was killed by SIGINT" in err
    events = shop.events()
    assert events[-1]["outcome"] == "interrupted"
    assert events[-1]["exit"] == 130
    assert shop.tags() == []
    assert shop.run("tag", "--version", "1.0.0", FIXTURE_GPG_SLEEP="0").code == 0
    assert shop.tags() == ["v1.0.0"]
