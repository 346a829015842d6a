"""Pushing the release tag: interruptible, resumable, and never a reason to release again."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from _project import Project


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


def test_a_push_that_hangs_stops_at_ctrl_c_and_resume_pushes_it(
    shop: Project, tmp_path: Path
) -> None:
    # An "ssh" that never answers and keeps a child holding the pipes.
    fake_ssh = tmp_path / "hanging-ssh"
    fake_ssh.write_text("#!/bin/sh\nsleep 60 &\nwait\n")
    fake_ssh.chmod(0o755)
    shop.git("remote", "add", "origin", "ssh://git@example.invalid/x.git")
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
