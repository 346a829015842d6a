"""The world says no: exit 3, nothing changed, and the message says how to fix it."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import shutil
import subprocess
from pathlib import Path

import pytest
from _project import DRILLBOOK, Project, make_project


def assert_nothing_ran(shop: Project, before: dict[str, bytes]) -> None:
    """No command ran, no journal was written, no file changed."""
    assert shop.snapshot() == before
    assert not (shop.root / "var").exists()
    assert shop.journals() == []
    assert shop.served_version() is None


def test_not_a_git_repository(tmp_path: Path) -> None:
    shop = make_project(tmp_path, git=False)
    try:
        before = shop.snapshot()
        result = shop.run("release", "--version", "1.0.0")
        assert result.code == 3, result
        assert "not a git repository" in result.err
        assert "hint: " in result.err
        assert_nothing_ran(shop, before)
    finally:
        assert not shop.close()


def test_a_branch_with_no_commit_yet_is_refused_as_one_not_as_an_empty_repository(
    shop: Project,
) -> None:
    shop.git("checkout", "-q", "--orphan", "pages")  # the repository has commits, HEAD none
    before = shop.snapshot()
    result = shop.run("release", "--version", "1.0.0")
    assert result.code == 3, result
    assert (
        f"HEAD of the git repository at {shop.root} has no commit yet (a new repository, or "
        "a branch made with --orphan)"
    ) in result.err
    assert "switch to the branch to release" in result.err
    assert_nothing_ran(shop, before)


def test_a_dirty_tree_is_refused_listing_the_files(shop: Project) -> None:
    (shop.root / "deploy.py").write_text((shop.root / "deploy.py").read_text() + "\n# edited\n")
    (shop.root / "scratch.txt").write_text("notes to self\n")
    before = shop.snapshot()

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 3, result
    assert "not clean" in result.err
    assert "  deploy.py" in result.err
    assert "  scratch.txt" in result.err
    assert "git stash" in result.err
    assert_nothing_ran(shop, before)
    assert shop.tags() == []


def test_the_file_its_output_is_sent_to_is_no_change_of_the_tree(shop: Project) -> None:
    # `drillbook release --format json > release-summary.json`, as CI keeps the summary: the
    # shell makes the file before drillbook looks at the tree.
    def release(version: str, out: str) -> tuple[int, str]:
        with (shop.root / out).open("w") as summary:
            done = subprocess.run(
                [str(DRILLBOOK), "release", "--version", version, "--format", "json"],
                cwd=shop.root,
                env=shop.env,
                stdin=subprocess.DEVNULL,
                stdout=summary,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
                check=False,
            )
        return done.returncode, done.stderr

    code, err = release("1.0.0", "release-summary.json")
    assert code == 0, err
    summary = json.loads((shop.root / "release-summary.json").read_text())
    assert (summary["outcome"], summary["exit"]) == ("ok", 0)
    assert shop.tags() == ["v1.0.0"]

    # The summary of another run, left in the tree, is a change like any other.
    code, err = release("1.1.0", "other-summary.json")
    assert code == 3, err
    assert "  release-summary.json" in err
    assert "other-summary.json" not in err

    # A tracked file overwritten so is changed code, wherever the change came from.
    (shop.root / "release-summary.json").unlink()
    (shop.root / "other-summary.json").unlink()
    code, err = release("1.1.0", "deploy.py")
    assert code == 3, err
    assert "  deploy.py" in err
    assert shop.tags() == ["v1.0.0"]


def test_no_git_identity_is_refused_with_the_commands_to_set_one(shop: Project) -> None:
    shop.git("config", "--unset", "user.name")
    shop.git("config", "--unset", "user.email")
    before = shop.snapshot()

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 3, result
    assert "no identity" in result.err
    assert "config user.name" in result.err
    assert_nothing_ran(shop, before)
    assert shop.tags() == []


def test_a_tag_on_another_commit_is_refused(shop: Project) -> None:
    released_commit = shop.git("rev-parse", "HEAD")
    shop.git("tag", "-a", "v1.0.0", "-m", "made by hand")
    (shop.root / "README").write_text("more\n")
    shop.commit("after the tag")
    before = shop.snapshot()

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 3, result
    assert "tag v1.0.0 already exists on" in result.err
    assert released_commit[:9] in result.err
    assert "git tag -d v1.0.0" in result.err
    assert_nothing_ran(shop, before)
    assert shop.git("rev-parse", "v1.0.0^{commit}") == released_commit


def test_a_released_tag_behind_head_is_not_offered_for_deletion(released: Project) -> None:
    shop = released
    tagged = shop.git("rev-parse", "HEAD")
    shop.git("commit", "-q", "--allow-empty", "-m", "the next change lands")
    journals = shop.journals()

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 3, result
    assert f"1.0.0 is released already: tag v1.0.0 is on {tagged[:9]}" in result.err
    assert "git tag -d" not in result.err  # it marks what runs: the next rollback's target
    assert "declare a new version" in result.err
    assert shop.journals() == journals


def test_a_tag_on_the_same_commit_is_a_step_already_done(shop: Project) -> None:
    shop.git("tag", "-a", "v1.0.0", "-m", "made by hand")
    tag_object = shop.git("rev-parse", "v1.0.0")

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 0, result
    assert "tag v1.0.0 (exists on HEAD: done)" in result.out
    assert shop.git("rev-parse", "v1.0.0") == tag_object
    tag = next(e for e in shop.events() if e["event"] == "step_finished" and e["step"] == "tag")
    assert tag["outcome"] == "done"
    assert tag["state"] == "exists"


def test_a_project_in_a_folder_of_a_larger_repository_releases_again(tmp_path: Path) -> None:
    # A monorepo: git names the project's own outputs services/shop/notes/..., not notes/...
    shop = make_project(tmp_path / "repo" / "services", git=False)
    top = tmp_path / "repo"
    (top / ".gitignore").write_text("services/home/\n")  # the fixture's HOME lies beside it
    for args in (
        ("init", "-q", "-b", "main"),
        ("config", "user.name", "Release Bot"),
        ("config", "user.email", "release@example.com"),
        ("add", "-A"),
        ("commit", "-q", "-m", "the monorepo"),
    ):
        subprocess.run(["git", "-C", str(top), *args], check=True, env=shop.env)
    try:
        assert shop.run("release", "--version", "1.0.0").code == 0
        assert shop.run("release", "--version", "1.1.0").code == 0  # notes/ and .drillbook/
        (top / "elsewhere.txt").write_text("a change outside the project still counts\n")
        refused = shop.run("release", "--version", "1.2.0")
        assert refused.code == 3, refused
        # Named from the repository's top, and said so: it is not in the project's folder.
        assert f"the working tree in {top}, the git repository of {shop.root}, is not" in (
            refused.err
        )
        assert "  elsewhere.txt" in refused.err
        assert "notes" not in refused.err
    finally:
        assert not shop.close()


def test_a_shallow_clone_without_older_tags_is_refused_not_taken_for_a_first_release(
    shop: Project, tmp_path: Path
) -> None:
    # As CI checks out: `git clone --depth 1`, which fetches only the tags on HEAD.
    shop.git("tag", "-a", "v1.0.0", "-m", "1.0.0")
    shop.git("commit", "-q", "--allow-empty", "-m", "1.1.0")
    shop.git("tag", "-a", "v1.1.0", "-m", "1.1.0")
    shop.git("commit", "-q", "--allow-empty", "-m", "1.2.0")
    clone_root = tmp_path / "ci" / "shop"
    shop.git("clone", "-q", "--depth", "1", f"file://{shop.root}", str(clone_root))
    clone = Project(clone_root, shop.home, shop.port, shop.url, shop.env)
    clone.git("config", "user.name", "CI")
    clone.git("config", "user.email", "ci@example.com")
    assert clone.tags() == []
    before = clone.snapshot()
    try:
        for args in (("release", "--version", "1.2.0"), ("rehearse", "--version", "1.1.0")):
            result = clone.run(*args)
            assert result.code == 3, result
            assert "no tag of a version below" in result.err
            assert "is a shallow clone" in result.err
            assert "git fetch --unshallow --tags" in result.err
            assert_nothing_ran(clone, before)
        back = clone.run("rollback", "--to", "1.0.0")
        assert back.code == 3, back
        assert "no tag v1.0.0 is in" in back.err
        assert "was never released" not in back.err
        assert_nothing_ran(clone, before)
        planned = clone.run("plan", "--version", "1.2.0")
        assert planned.code == 3, planned
        assert "previous: unknown: a shallow clone" in planned.out
        assert "none (first release)" not in planned.out
        assert clone.tags() == []

        clone.git("fetch", "-q", "--tags")  # still shallow, and now holding every tag
        planned = clone.run("plan", "--version", "1.2.0")
        assert planned.code == 0, planned
        assert "previous: 1.1.0" in planned.out
    finally:
        assert not clone.close()


@pytest.mark.parametrize("mode", [0o644, 0o755])
def test_a_notes_folder_that_cannot_be_written_is_found_before_the_first_step(
    shop: Project, mode: int
) -> None:
    # Root writes anywhere, so "cannot be written" is made with a file where the folder goes.
    notes = shop.root / "notes"
    notes.write_text("not a folder\n")
    notes.chmod(mode)
    shop.commit("a file called notes")
    before = shop.snapshot()

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 3, result
    assert "notes" in result.err
    assert_nothing_ran(shop, before)
    assert shop.tags() == []


def test_an_unknown_version_or_environment_is_a_usage_error(shop: Project) -> None:
    before = shop.snapshot()
    result = shop.run("release", "--version", "9.9.9")
    assert result.code == 2, result
    assert "no release '9.9.9' in the runbook of shop (declared: 1.0.0, 1.1.0, 1.2.0)" in result.err
    assert "hint:" not in result.err
    result = shop.run("release", "--version", "v1.1.0")
    assert result.code == 2, result
    assert "hint: did you mean --version 1.1.0? versions are written without" in result.err
    result = shop.run("tag", "--version", "")
    assert result.code == 2, result
    assert "no release '' in the runbook" in result.err
    assert "hint: --version expects a semver version such as 1.2.0" in result.err
    result = shop.run("release", "--version", "1.0.0", "--env", "qa")
    assert result.code == 2, result
    assert "no environment 'qa'" in result.err
    assert_nothing_ran(shop, before)


def test_a_dry_run_on_a_dirty_tree_shows_the_whole_plan_then_refuses(shop: Project) -> None:
    (shop.root / "scratch.txt").write_text("notes to self\n")
    shop.git("config", "--unset", "user.name")
    shop.git("config", "--unset", "user.email")
    before = shop.snapshot()

    result = shop.run("release", "--version", "1.0.0", "--dry-run")

    assert result.code == 3, result
    # Every step is shown, with every problem, before the refusal.
    assert "deploy 1.0.0 to staging" in result.out
    assert "tag v1.0.0" in result.out
    assert "fail refused: the working tree" in result.out
    assert "fail refused: " in result.out and "identity" in result.out
    assert "the release would be refused: the working tree" in result.err
    assert "and 1 more above" in result.err
    assert shop.snapshot() == before
    assert shop.served_version() is None
    assert shop.tags() == []


def test_a_check_url_the_environment_refuses_is_found_before_the_first_step(
    shop: Project,
) -> None:
    # `check` accepts a host on any environment's allow_hosts: it cannot know where a check
    # runs. The release knows, and refuses before its gates, not after its deploy.
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text().replace(
        "            - get: /feature\n              expect: {status: 200}\n",
        "            - get: https://shop.example.com/feature\n"
        "              expect: {status: 200}\n",
        1,
    )
    runbook.write_text(
        text.replace("  production:\n", "  production:\n    allow_hosts: [shop.example.com]\n", 1)
    )
    shop.commit("a check of production's host")
    before = shop.snapshot()

    result = shop.run("release", "--version", "1.1.0", "--format", "json")

    assert result.code == 3, result
    assert (
        "expected check GET https://shop.example.com/feature of feature: check URL "
        "https://shop.example.com/feature refused for environment staging: host "
        "shop.example.com is not on allow_hosts" in result.err
    )
    assert_nothing_ran(shop, before)
    # A pipeline that asked for JSON gets it, for a refusal too.
    summary = json.loads(result.out)
    assert summary["exit"] == 3 and summary["outcome"] == "refused"
    assert "shop.example.com is not on allow_hosts" in summary["error"]

    plan = shop.run("plan", "--version", "1.1.0")
    assert plan.code == 3, plan
    assert "fail refused: expected check GET https://shop.example.com/feature" in plan.out


@pytest.mark.parametrize("config", ["LOG_LEVEL=info\nthis is not a line\n", None])
def test_a_broken_or_missing_config_file_is_bad_input_and_nothing_runs(
    shop: Project, config: str | None
) -> None:
    path = shop.root / "config" / "staging.env"
    if config is None:
        shop.git("rm", "-q", "config/staging.env")
    else:
        path.write_text(config)
    shop.commit("a broken config")
    before = shop.snapshot()

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 2, result
    assert "config/staging.env" in result.err
    assert "nothing ran" in result.err
    assert_nothing_ran(shop, before)
    assert shop.run("plan", "--version", "1.0.0").code == 2


def test_config_rules_without_a_config_file_to_check_refuse_the_release(shop: Project) -> None:
    # Without a file, the plan had no verify-config step and the rules were never checked.
    runbook = shop.root / "runbooks" / "shop.yaml"
    runbook.write_text(runbook.read_text().replace("    config: config/staging.env\n", "", 1))
    shop.commit("staging's config path lost")
    before = shop.snapshot()

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 2, result
    assert (
        "the runbook sets config rules, but environment 'staging' has no config file for them"
    ) in result.err
    assert "add `config: config/staging.env` under environments.staging" in result.err
    assert_nothing_ran(shop, before)
    assert shop.run("plan", "--version", "1.0.0").code == 2


def test_a_dry_run_says_where_a_tag_on_another_commit_is(shop: Project) -> None:
    shop.git("tag", "-a", "v1.0.0", "-m", "made by hand")
    (shop.root / "README").write_text("more\n")
    shop.commit("after the tag")

    result = shop.run("release", "--version", "1.0.0", "--dry-run")

    assert result.code == 3, result
    assert "tag: v1.0.0 exists on " in result.out
    assert "not on HEAD" in result.out
    assert "absent; it will be made" not in result.out


def test_a_note_that_cannot_be_replaced_is_found_before_the_first_step(released: Project) -> None:
    shop = released
    note = shop.root / "notes" / "shop-1.1.0-rollback.md"
    assert shop.run("rollback-note", "--version", "1.1.0").code == 0
    shop.commit("a note kept in git")
    # Root writes through every permission: an immutable file is what refuses it.
    flagged = subprocess.run(["chattr", "+i", str(note)], capture_output=True, check=False)
    if flagged.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {flagged.stderr.decode().strip()}")
    try:
        journals = shop.journals()
        result = shop.run("release", "--version", "1.1.0")
        assert result.code == 3, result
        assert "cannot write the rollback note to " in result.err
        assert "shop-1.1.0-rollback.md" in result.err
        assert shop.journals() == journals
        assert shop.served_version() == "1.0.0"
        assert shop.tags() == ["v1.0.0"]
    finally:
        subprocess.run(["chattr", "-i", str(note)], check=False)


def test_a_named_pipe_where_the_note_goes_is_found_before_the_first_step(shop: Project) -> None:
    # The note was opened to be written at the end of preflight, and waited for a reader.
    (shop.root / "notes").mkdir()
    os.mkfifo(shop.root / "notes" / "shop-1.0.0-rollback.md")

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 3, result
    assert "shop-1.0.0-rollback.md: it is a named pipe, not a regular file" in result.err
    assert shop.journals() == []
    assert shop.served_version() is None
    assert shop.tags() == []


def test_plan_says_a_release_now_would_meet_a_run_that_never_finished(shop: Project) -> None:
    proc = shop.start("release", "--version", "1.0.0", FIXTURE_SLOW_GATE="unit")
    shop.read_until(proc, "unit: sleeping")
    run_id = shop.journals()[-1].stem

    going = shop.run("plan", "--version", "1.0.0")
    proc.kill()  # SIGKILL: the journal stays started, never finished
    proc.communicate()
    killed = shop.run("plan", "--version", "1.0.0")
    released = shop.run("release", "--version", "1.0.0")

    # While it runs, the lock names it; it is not called killed.
    assert f"lock: held by run {run_id}" in going.out
    assert "never finished" not in going.text
    # Once killed, plan says what release then does: refuse, naming the run (exit 3).
    assert killed.code == 3, killed
    assert f"refused: run {run_id} (release of shop 1.0.0 on staging" in killed.out
    assert f"drillbook abandon {run_id}" in killed.err
    assert released.code == 3, released
    assert f"run {run_id} (release of shop 1.0.0 on staging" in released.err
    assert shop.run("abandon", run_id).code == 0  # stops the gate it left sleeping


def test_plan_of_a_done_release_is_not_refused_for_another_run_that_never_finished(
    released: Project,
) -> None:
    shop = released
    proc = shop.start("release", "--version", "1.1.0", FIXTURE_SLOW_GATE="unit")
    shop.read_until(proc, "unit: sleeping")
    run_id = shop.journals()[-1].stem
    proc.kill()
    proc.communicate()

    planned = shop.run("plan", "--version", "1.0.0")
    released_again = shop.run("release", "--version", "1.0.0")
    other = shop.run("plan", "--version", "1.1.0")

    # release 1.0.0 changes nothing, so nothing refuses it; plan says the same.
    assert released_again.code == 0, released_again
    assert "Nothing changed" in released_again.out
    assert planned.code == 0, planned
    assert "a release now changes nothing" in planned.out
    # A release that would change something is refused, and its plan says so.
    assert other.code == 3, other
    assert f"refused: run {run_id}" in other.out
    assert shop.run("abandon", run_id).code == 0


@pytest.mark.parametrize("stdin", ["closed", "devnull"])
def test_production_without_a_terminal_to_ask_is_refused(shop: Project, stdin: str) -> None:
    before = shop.snapshot()
    # `<&-`: the child starts with no file descriptor 0 at all.
    closed = stdin == "closed"
    done = subprocess.run(
        [
            "sh",
            "-c",
            f'exec "$0" "$@" {"<&-" if closed else "</dev/null"}',
            str(DRILLBOOK),
            "deploy",
            "--env",
            "production",
            "--version",
            "1.0.0",
        ],
        cwd=shop.root,
        env=shop.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "needs confirmation, and there is no terminal to ask" in done.stderr
    assert "hint: pass --yes to confirm" in done.stderr
    assert "internal error" not in done.stderr
    assert_nothing_ran(shop, before)


def answer_on_a_terminal(shop: Project, args: list[str], answer: bytes) -> tuple[int, str, str]:
    """Run `drillbook ARGS` with stdin and stderr on a real terminal and stdout to a pipe;
    type `answer` once the question is asked. Its exit code, the terminal's text, stdout."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(DRILLBOOK), *args],
        cwd=shop.root,
        env=shop.env,
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    said = b""
    try:
        while b"to go on: " not in said:  # the question is there: answer it
            ready, _, _ = select.select([leader], [], [], 30)
            assert ready, f"no question on the terminal: {said!r}"
            chunk = os.read(leader, 4096)
            assert chunk, said
            said += chunk
        os.write(leader, answer)
        out, _ = proc.communicate(timeout=60)
        with contextlib.suppress(OSError):  # EIO once the program has closed the terminal
            while chunk := os.read(leader, 4096):
                said += chunk
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, said.decode(errors="replace"), out.decode()


def test_ctrl_d_at_the_confirmation_prompt_is_no_and_nothing_runs(shop: Project) -> None:
    before = shop.snapshot()

    code, terminal, out = answer_on_a_terminal(
        shop, ["deploy", "--env", "production", "--version", "1.0.0"], b"\x04"
    )

    assert code == 2, terminal
    assert "not confirmed (no answer, expected 'production'); nothing ran" in terminal
    assert "internal error" not in terminal
    assert out == ""
    assert_nothing_ran(shop, before)


def test_the_confirmation_is_asked_on_the_terminal_not_into_stdout(shop: Project) -> None:
    # `drillbook release --env production --format json > summary.json`, typed by a person.
    code, terminal, out = answer_on_a_terminal(
        shop,
        ["release", "--env", "production", "--version", "1.0.0", "--format", "json"],
        b"production\n",
    )

    # The fixture's production cannot be deployed to: the release fails there, and says so
    # in its JSON, which is what this is about.
    assert "releasing to production: type the environment's name to go on: " in terminal
    assert "to go on" not in out
    summary = json.loads(out)
    assert (summary["env"], summary["exit"]) == ("production", code)


def test_a_tag_git_cannot_sign_is_found_before_the_first_step(released: Project) -> None:
    # With tag.gpgSign, a signer that fails would be found at the tag, after the deploy and
    # its checks, and a good release rolled back for it.
    released.git("config", "tag.gpgSign", "true")
    released.git("config", "gpg.program", "false")
    runs = len(released.journals())

    refused = released.run("release", "--version", "1.1.0")
    plan = released.run("plan", "--version", "1.1.0")

    assert refused.code == 3, refused
    assert "git signs this repository's tags (tag.gpgSign is true), and it cannot sign now" in (
        refused.err
    )
    assert "gpg failed to sign the data" in refused.err
    assert "retry safe: yes" in refused.err
    assert released.served_version() == "1.0.0"
    assert "v1.1.0" not in released.tags()
    assert len(released.journals()) == runs  # nothing ran
    assert plan.code == 0, plan
    assert "git signs the tag (tag.gpgSign): tried first" in plan.out


def test_a_bisect_under_way_is_refused_before_its_commit_is_released(shop: Project) -> None:
    shop.git("commit", "-q", "--allow-empty", "-m", "suspect")
    shop.git("bisect", "start", "HEAD", "HEAD~1")
    before = shop.snapshot()
    for args in (("release", "--version", "1.0.0"), ("tag", "--version", "1.0.0")):
        result = shop.run(*args)
        assert result.code == 3, result
        assert "a git bisect is under way in " in result.err
        assert "git bisect reset" in result.err
        assert_nothing_ran(shop, before)
    assert shop.tags() == []
    shop.git("bisect", "reset")
    assert shop.run("plan", "--version", "1.0.0").code == 0


def test_a_tag_a_reference_transaction_hook_refuses_is_found_before_the_first_step(
    shop: Project,
) -> None:
    # A policy hook, as a global core.hooksPath may hold: only CI may make tags.
    hooks = shop.home / "hooks"
    hooks.mkdir()
    hook = hooks / "reference-transaction"
    hook.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = prepared ] && grep -q " refs/tags/"; then\n'
        '  echo "policy: tags are made by CI only" >&2; exit 1\n'
        "fi\n"
    )
    hook.chmod(0o755)
    shop.git("config", "core.hooksPath", str(hooks))
    before = shop.snapshot()

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 3, result
    assert "git would refuse the tag v1.0.0 on " in result.err
    assert "fatal: ref updates aborted by hook; the release would deploy" in result.err
    assert "  policy: tags are made by CI only" in result.err
    assert f"reference-transaction hook ({hook})" in result.err
    assert_nothing_ran(shop, before)
    assert shop.tags() == []
    planned = shop.run("plan", "--version", "1.0.0")
    assert planned.code == 3, planned
    assert "refused: git would refuse the tag v1.0.0" in planned.out

    shop.git("config", "--unset", "core.hooksPath")
    assert shop.run("plan", "--version", "1.0.0").code == 0


def test_a_tag_git_can_sign_is_signed(released: Project) -> None:
    released.sign_tags_slowly()

    result = released.run("release", "--version", "1.1.0", FIXTURE_GPG_SLEEP="0")

    assert result.code == 0, result
    assert "-----BEGIN PGP SIGNATURE-----" in released.git("cat-file", "-p", "v1.1.0")


@pytest.mark.parametrize("fault", ["dangling link", "folder"])
def test_a_note_folder_that_cannot_hold_the_note_is_found_before_the_first_step(
    shop: Project, fault: str
) -> None:
    # A link to a folder that was removed, or a folder where the note goes: found by the
    # preflight, not by the last step, after the deploy and the tag.
    if fault == "dangling link":
        (shop.root / "notes").symlink_to(shop.home / "removed-notes")
        named, found = "notes", "is a symbolic link to "
    else:
        (shop.root / "notes" / "shop-1.0.0-rollback.md").mkdir(parents=True)
        named, found = "shop-1.0.0-rollback.md", "it is a folder, expected a file"

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 3, result
    assert f"cannot write the rollback note to {shop.root / 'notes'}" in result.err
    assert named in result.err
    assert found in result.err
    assert "hint: " in result.err
    assert "retry safe: yes" in result.err
    assert shop.journals() == []
    assert shop.served_version() is None
    assert shop.tags() == []


def test_a_misspelt_placeholder_stops_the_release_before_anything_runs(shop: Project) -> None:
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text()
    runbook.write_text(text.replace('--version, "{version}"', '--version, "{verison}"', 1))
    shop.commit("a typo in the deploy")
    before = shop.snapshot()
    result = shop.run("release", "--version", "1.0.0")
    assert result.code == 2, result
    assert "runbooks/shop.yaml:" in result.err
    assert "unknown placeholder {verison}" in result.err
    assert "did you mean {version}?" in result.err
    assert_nothing_ran(shop, before)
    assert shop.tags() == []


def test_a_branch_behind_its_upstream_is_refused_before_its_stale_code_is_released(
    shop: Project, tmp_path: Path
) -> None:
    # A colleague's fix is on origin/main, fetched but not merged: releasing here would ship
    # (and tag) the code without it.
    origin = tmp_path / "origin.git"
    shop.git("clone", "-q", "--bare", str(shop.root), str(origin))
    shop.git("remote", "add", "origin", str(origin))
    shop.git("fetch", "-q", "origin")
    shop.git("branch", "-q", "--set-upstream-to=origin/main")
    colleague = tmp_path / "colleague"
    shop.git("clone", "-q", str(origin), str(colleague))
    for args in (
        ("-c", "user.name=C", "-c", "user.email=c@example.com", "commit", "-q"),
        ("push", "-q", "origin", "HEAD:main"),
    ):
        extra = ("--allow-empty", "-m", "the fix") if "commit" in args else ()
        subprocess.run(["git", "-C", str(colleague), *args, *extra], check=True)
    shop.git("fetch", "-q", "origin")
    before = shop.snapshot()
    for args in (("release", "--version", "1.0.0"), ("tag", "--version", "1.0.0")):
        result = shop.run(*args)
        assert result.code == 3, result
        assert "branch main (HEAD " in result.err
        assert "is 1 commit behind origin/main, as last fetched" in result.err
        assert "git merge --ff-only origin/main" in result.err
        assert_nothing_ran(shop, before)
    planned = shop.run("plan", "--version", "1.0.0")
    assert planned.code == 3, planned
    assert "1 commit behind origin/main" in planned.out + planned.err
    assert shop.tags() == []

    # A commit of its own as well: diverged, still behind, and both are said.
    shop.git("commit", "-q", "--allow-empty", "-m", "local")
    diverged = shop.run("release", "--version", "1.0.0")
    assert diverged.code == 3, diverged
    assert "it also has 1 commit(s) that origin/main has not" in diverged.err

    # Released on purpose from a detached HEAD: no upstream to be behind.
    shop.git("checkout", "-q", "--detach")
    assert shop.run("plan", "--version", "1.0.0").code == 0
    shop.git("checkout", "-q", "main")
    shop.git("reset", "-q", "--hard", "origin/main")
    shop.git("commit", "-q", "--allow-empty", "-m", "ahead only")
    # Ahead of the upstream only: nothing of it is missing here.
    assert shop.run("plan", "--version", "1.0.0").code == 0


def test_a_clone_that_fetches_no_tags_is_refused_not_taken_for_a_first_release(
    shop: Project, tmp_path: Path
) -> None:
    # `git clone --no-tags` (or a CI set to skip tags) sets the remote never to fetch a tag.
    shop.git("tag", "-a", "v1.0.0", "-m", "1.0.0")
    shop.git("commit", "-q", "--allow-empty", "-m", "1.1.0")
    clone_root = tmp_path / "ci" / "shop"
    shop.git("clone", "-q", "--no-tags", f"file://{shop.root}", str(clone_root))
    clone = Project(clone_root, shop.home, shop.port, shop.url, shop.env)
    clone.git("config", "user.name", "CI")
    clone.git("config", "user.email", "ci@example.com")
    assert clone.tags() == []
    before = clone.snapshot()
    try:
        result = clone.run("release", "--version", "1.1.0")
        assert result.code == 3, result
        assert "no tag of a version below 1.1.0 (named like vX.Y.Z)" in result.err
        assert "its remote origin is set to fetch no tags" in result.err
        assert "git fetch --tags origin" in result.err
        assert_nothing_ran(clone, before)
        back = clone.run("rollback", "--to", "1.0.0")
        assert back.code == 3, back
        assert "no tag v1.0.0 is in" in back.err
        assert "its remote origin is set to fetch no tags" in back.err
        assert_nothing_ran(clone, before)
        planned = clone.run("plan", "--version", "1.1.0")
        assert planned.code == 3, planned
        assert "previous: unknown: a clone that fetches no tags" in planned.out

        clone.git("fetch", "-q", "--tags", "origin")
        planned = clone.run("plan", "--version", "1.1.0")
        assert planned.code == 0, planned
        assert "previous: 1.0.0" in planned.out

        # A first release from such a clone: unsetting the option says there is none to fetch.
        clone.git("tag", "-d", "v1.0.0")
        assert clone.run("plan", "--version", "1.1.0").code == 3
        clone.git("config", "--unset", "remote.origin.tagOpt")
        planned = clone.run("plan", "--version", "1.1.0")
        assert planned.code == 0, planned
        assert "previous: none (first release)" in planned.out
    finally:
        assert not clone.close()


def test_tags_this_user_cannot_write_are_found_first_with_what_to_do(shop: Project) -> None:
    # git names the .lock file it could not create; the hint said to delete it, and there
    # was none: the folder is not this user's to write.
    tags = shop.root / ".git" / "refs" / "tags"
    argv = [str(DRILLBOOK), "release", "--version", "1.0.0"]
    if os.geteuid() == 0:
        # Root writes anywhere; in a user namespace a folder of a user it does not map is
        # closed to it, as to anyone else.
        unshare = shutil.which("unshare")
        ns = [unshare, "--user", "--map-root-user"] if unshare else []
        if not ns or subprocess.run([*ns, "true"], capture_output=True, check=False).returncode:
            pytest.skip("needs a user other than root, or unshare with user namespaces")
        os.chown(tags, 54321, 54321)
        argv = [*ns, *argv]
    else:
        tags.chmod(0o555)
    before = shop.snapshot()
    try:
        done = subprocess.run(
            argv,
            cwd=shop.root,
            env=shop.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.chown(tags, os.getuid(), os.getgid())
        tags.chmod(0o755)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "git would refuse the tag v1.0.0 on " in done.stderr
    assert "Permission denied" in done.stderr
    assert "hint: this user cannot write the repository's tags" in done.stderr
    assert "delete the .lock" not in done.stderr
    assert_nothing_ran(shop, before)


def test_if_unreleased_a_version_released_on_an_older_commit_is_nothing_to_release(
    released: Project,
) -> None:
    # A push of main that declares no new version, as CI releases every push.
    (released.root / "README").write_text("a fix without a version of its own\n")
    released.commit("after the release")
    assert released.run("release", "--version", "1.0.0").code == 3
    before = released.snapshot()
    journals = released.journals()

    result = released.run("release", "--version", "1.0.0", "--if-unreleased")
    assert result.code == 0, result
    assert result.out.startswith("nothing to release: 1.0.0 is released already: tag v1.0.0")
    assert "declare a new version under `releases:`" in result.out
    summary = released.run(
        "release", "--version", "1.0.0", "--if-unreleased", "--yes", "--push", "--format", "json"
    )
    assert summary.code == 0, summary
    data = json.loads(summary.out)
    assert (data["outcome"], data["exit"], data["version"]) == ("nothing_to_release", 0, "1.0.0")
    assert data["steps"] == []
    for args in (
        ("plan", "--version", "1.0.0", "--if-unreleased"),
        ("release", "--version", "1.0.0", "--dry-run", "--if-unreleased"),
    ):
        planned = released.run(*args)
        assert planned.code == 0, planned
        assert "nothing to release" in planned.out
    assert released.snapshot() == before
    assert released.journals() == journals
    assert released.tags() == ["v1.0.0"]

    # Any other refusal, met first, stays one: a dirty tree is not "nothing to release".
    (released.root / "README").write_text("uncommitted\n")
    for args in (
        ("release", "--version", "1.0.0", "--if-unreleased"),
        ("plan", "--version", "1.0.0", "--if-unreleased"),
    ):
        dirty = released.run(*args)
        assert dirty.code == 3, dirty
        assert "nothing to release" not in dirty.out + dirty.err
