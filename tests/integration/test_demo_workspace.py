"""The demo's workspace on machines unlike the author's: the user's git setup, odd `--keep`
folders, and a set-up that fails half way. Real git, real folders; no server is started.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from _demo_checks import git_tags

from drillbook import gitops
from drillbook.demo import prepare_workspace, processes_of, stop_staging
from drillbook.errors import EXIT_INVALID, EXIT_PRECONDITION, PreconditionFailed


def failing_hooks(folder: Path) -> Path:
    """A folder of hooks that each refuse, as a strict company setup might install."""
    folder.mkdir(parents=True)
    for name in (
        "pre-commit",
        "prepare-commit-msg",
        "commit-msg",
        "post-commit",
        "reference-transaction",
        "pre-push",
    ):
        hook = folder / name
        hook.write_text(f"#!/bin/sh\necho 'hook {name} refuses' >&2\nexit 1\n")
        hook.chmod(0o755)
    return folder


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME with no system git config: only what a test writes there counts."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_CONFIG_GLOBAL", "XDG_CONFIG_HOME", "GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_the_workspace_runs_none_of_the_users_git_hooks_or_signing(
    home: Path, tmp_path: Path
) -> None:
    hooks = failing_hooks(tmp_path / "hooks")
    template = tmp_path / "template"
    failing_hooks(template / "hooks")
    config = home / ".gitconfig"
    config.write_text(
        f"[core]\n\thooksPath = {hooks}\n"
        f"[init]\n\ttemplateDir = {template}\n\tdefaultBranch = trunk\n"
        "[commit]\n\tgpgSign = true\n"
        "[tag]\n\tgpgSign = true\n\tforceSignAnnotated = true\n"
        "[gpg]\n\tprogram = /nonexistent/gpg\n"
    )
    before = config.read_bytes()

    ws = prepare_workspace(tmp_path / "ws")

    log = subprocess.run(
        ["git", "-C", str(ws.root), "log", "--format=%an <%ae> %s"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert log.stdout.strip() == (
        "drillbook demo <demo@drillbook.invalid> The demo service as it runs today"
    )
    # The release's tag goes through the same repository and must not meet the hooks either.
    assert gitops.create_tag(ws.root, "v1.0.0", "1.0.0\n") == "created"
    assert config.read_bytes() == before  # the user's git config is read, never written
    assert sorted(p.name for p in home.iterdir()) == [".gitconfig"]


def test_the_users_line_ending_and_ignore_settings_leave_the_bundled_files_as_they_are(
    home: Path, tmp_path: Path
) -> None:
    excludes = tmp_path / "excludes"
    excludes.write_text("config/\n*.py\n")
    (home / ".gitconfig").write_text(
        f"[core]\n\tautocrlf = true\n\tsafecrlf = true\n\texcludesFile = {excludes}\n"
    )

    ws = prepare_workspace(tmp_path / "ws")

    tracked = subprocess.run(
        ["git", "-C", str(ws.root), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "config/staging.env" in tracked
    assert "deploy.py" in tracked
    assert gitops.dirty_files(ws.root) == []
    committed = subprocess.run(
        ["git", "-C", str(ws.root), "show", "HEAD:deploy.py"], capture_output=True, check=True
    ).stdout
    assert b"\r\n" not in committed


def test_git_settings_given_through_the_environment_do_not_outrank_the_workspaces(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks = failing_hooks(tmp_path / "hooks")
    # What `git -c ... <alias>` or GIT_CONFIG_COUNT hands to every git a shell runs.
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'core.hookspath'='{hooks}'")
    for number, (key, value) in enumerate(
        [("commit.gpgSign", "true"), ("tag.gpgSign", "true"), ("gpg.program", "/nonexistent")]
    ):
        monkeypatch.setenv(f"GIT_CONFIG_KEY_{number}", key)
        monkeypatch.setenv(f"GIT_CONFIG_VALUE_{number}", value)
    monkeypatch.setenv("GIT_CONFIG_COUNT", "3")

    ws = prepare_workspace(tmp_path / "ws")

    assert not [n for n in ws.env if n.startswith(("GIT_CONFIG_PARAM", "GIT_CONFIG_COUNT"))]
    tag = subprocess.run(
        ["git", "tag", "-a", "v1.0.0", "-m", "1.0.0"],
        cwd=ws.root,
        env=ws.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tag.returncode == 0, tag.stderr  # as the story's releases tag, with its env


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_keep_folder_of_another_user_is_refused_with_why_and_left_empty(
    home: Path, tmp_path: Path
) -> None:
    target = tmp_path / "theirs"
    target.mkdir()
    os.chown(target, 65534, 65534)  # nobody's, as a folder mounted from another account

    done = subprocess.run(
        [sys.executable, "-m", "drillbook", "demo", "--keep", str(target)],
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == EXIT_PRECONDITION, done.stdout + done.stderr
    assert "belongs to another user" in done.stderr
    assert "safe.directory" in done.stderr
    assert "not in a git directory" not in done.stderr
    assert list(target.iterdir()) == []


def test_with_no_writable_temporary_folder_the_workspace_is_not_made_in_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "my-project"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "nowhere"))
    # What Python settles on when TMPDIR, /tmp, /var/tmp and /usr/tmp cannot be written.
    monkeypatch.setattr(tempfile, "tempdir", str(here))

    with pytest.raises(PreconditionFailed, match="no temporary folder can be written") as caught:
        prepare_workspace()

    assert "--keep DIR" in (caught.value.hint or "")
    assert list(here.iterdir()) == []


def test_a_set_up_that_fails_takes_its_temporary_workspace_away(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    nothing = tmp_path / "empty-path"
    nothing.mkdir()
    monkeypatch.setenv("PATH", str(nothing))  # no git to make the repository with

    with pytest.raises(PreconditionFailed, match="git is not installed"):
        prepare_workspace()

    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("existing", [False, True], ids=["new folder", "empty folder"])
def test_a_set_up_that_fails_leaves_the_keep_folder_as_it_found_it_for_the_next_run(
    home: Path, tmp_path: Path, existing: bool
) -> None:
    target = tmp_path / "tour"
    if existing:
        target.mkdir()
    nothing = tmp_path / "empty-path"
    nothing.mkdir()
    env = {**os.environ, "PATH": str(nothing), "NO_COLOR": "1"}

    done = subprocess.run(
        [sys.executable, "-m", "drillbook", "demo", "--keep", str(target)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == EXIT_PRECONDITION, done.stdout + done.stderr
    assert "git is not installed" in done.stderr
    assert "Traceback" not in done.stderr
    if existing:
        assert list(target.iterdir()) == []
    else:
        assert not target.exists()


@pytest.mark.parametrize(
    ("make", "code", "said"),
    [
        ("parent is a file", EXIT_PRECONDITION, "cannot make the demo's workspace"),
        ("dangling symlink", EXIT_INVALID, "symbolic link to"),
    ],
)
def test_a_keep_folder_that_cannot_be_made_is_refused_with_what_to_do(
    tmp_path: Path, make: str, code: int, said: str
) -> None:
    if make == "parent is a file":
        (tmp_path / "a-file").write_text("x")
        target = tmp_path / "a-file" / "tour"
    else:
        target = tmp_path / "link"
        target.symlink_to(tmp_path / "nowhere")

    done = subprocess.run(
        [sys.executable, "-m", "drillbook", "demo", "--keep", str(target)],
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == code, done.stdout + done.stderr
    assert said in done.stderr
    assert str(target) in done.stderr
    assert "hint:" in done.stderr
    assert "internal error" not in done.stderr
    assert not (tmp_path / "nowhere").exists()


def test_a_demo_stopped_before_its_first_release_suggests_only_what_exists(tmp_path: Path) -> None:
    root = tmp_path / "tour"
    proc = subprocess.Popen(
        [sys.executable, "-m", "drillbook", "demo", "--keep", str(root)],
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("set-up:"):  # the set-up's release 1.0.0 has begun
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen) + rest

    assert proc.returncode == 130, out[-3000:]
    assert "the demo was interrupted" in out
    assert "v1.1.0" not in git_tags(root)
    assert "git show v1.1.0" not in out  # there is no such tag to show
    assert "git log" in out
    deadline = time.monotonic() + 10
    while processes_of(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(root) == []


def test_the_command_that_removes_a_temporary_workspace_can_be_pasted_as_shown(
    tmp_path: Path,
) -> None:
    temp = tmp_path / "my temp ü"
    temp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "drillbook", "demo"],
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1", "TMPDIR": str(temp)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("set-up:"):
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen) + rest

    assert proc.returncode == 130, out[-3000:]
    (workspace,) = temp.glob("drillbook-demo-*")
    said = [line for line in out.splitlines() if "rm -rf" in line]
    assert len(said) == 1, out[-3000:]
    command = said[0].split("`")[1]
    assert shlex.split(command) == ["rm", "-rf", str(workspace)]


def test_only_what_the_story_started_is_stopped_not_a_users_tail_of_its_log(
    tmp_path: Path,
) -> None:
    ws = prepare_workspace(tmp_path / "ws")
    log = ws.root / "var" / "staging" / "logs" / "app.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("")
    wait = [sys.executable, "-c", "import time, sys; time.sleep(60)", str(log)]
    theirs = subprocess.Popen(wait)  # names the workspace's var/, as `tail -f` would
    ours = subprocess.Popen(wait, env=ws.env)  # started with the story's environment
    try:
        deadline = time.monotonic() + 10
        while ours.pid not in processes_of(ws.root) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_of(ws.root) == [ours.pid]

        said = stop_staging(ws)

        assert ours.wait(timeout=10) is not None
        assert theirs.poll() is None, "a process the demo did not start was stopped"
        assert any(str(ours.pid) in line for line in said)
    finally:
        for proc in (theirs, ours):
            proc.kill()
            proc.wait()


def test_what_the_story_started_is_found_under_a_folder_name_that_is_not_utf8(
    tmp_path: Path,
) -> None:
    # The workspace's name was encoded as UTF-8 to be looked for in each process's
    # environment: under a folder named in Latin-1, or `café` in a non-UTF-8 locale, the demo
    # ended its story with "internal error: UnicodeEncodeError" as it stopped staging.
    ws = prepare_workspace(Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9")) / "ws")
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=ws.env)
    try:
        deadline = time.monotonic() + 10
        while ours.pid not in processes_of(ws.root) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_of(ws.root) == [ours.pid]

        said = stop_staging(ws)

        assert ours.wait(timeout=10) is not None
        assert any(str(ours.pid) in line for line in said)
    finally:
        ours.kill()
        ours.wait()


def test_a_venv_whose_path_is_not_utf8_gets_a_python_shim_that_runs_it(tmp_path: Path) -> None:
    # The shim was written as UTF-8 text: with the interpreter under a folder named in
    # Latin-1, or `café` in a locale that is not UTF-8, the demo stopped with an internal error.
    venv = Path(sys.prefix)
    if venv == Path(sys.base_prefix):
        pytest.skip("needs the tests to run in a venv")
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))
    odd.mkdir()
    (odd / "venv").symlink_to(venv, target_is_directory=True)
    python = odd / "venv" / "bin" / Path(sys.executable).name
    code = (
        "import sys; from pathlib import Path; from drillbook.demo import prepare_workspace; "
        "print(prepare_workspace(Path(sys.argv[1])).root)"
    )
    made = subprocess.run(
        [str(python), "-c", code, str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    shim = tmp_path / "ws" / ".drillbook" / "bin" / "python"
    ran = subprocess.run(
        [str(shim), "-c", "import sys; print(sys.executable)"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == os.fsencode(python)


def test_the_storys_temporary_files_stay_in_the_workspace_and_leave_its_tree_clean(
    tmp_path: Path,
) -> None:
    ws = prepare_workspace(tmp_path / "ws")
    code = "import tempfile; print(tempfile.mkdtemp(prefix='pytest-of-'))"

    made = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ws.root,
        env=ws.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    assert Path(made).parent == ws.root / ".drillbook" / "tmp"
    assert gitops.dirty_files(ws.root) == []


def test_a_stop_that_fails_is_not_reported_as_having_stopped_staging(tmp_path: Path) -> None:
    import fcntl

    ws = prepare_workspace(tmp_path / "ws")
    lock = ws.root / "var" / "staging" / "deploy.lock"
    lock.parent.mkdir(parents=True)
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a deploy still running would

        said = stop_staging(ws)

    assert not [line for line in said if line.startswith("stopped by")], said
    assert said[0].startswith("`python deploy.py --env staging --stop` failed (exited 1)")
    assert "another deploy of staging is running" in said[0]
