"""The console script's entry: interpreter settings for a short-lived process, and only there."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from drillbook.__main__ import GC_THRESHOLDS


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_the_entry_sets_the_collector_then_freezes_at_the_end() -> None:
    out = run_python(
        """
        import gc
        import drillbook.cli
        seen = []
        drillbook.cli.main = lambda: seen.append(gc.get_threshold())
        from drillbook.__main__ import main
        main()
        print(seen[0], gc.get_freeze_count() > 0)
        """
    )
    assert out == f"{GC_THRESHOLDS} True"


def test_the_entry_freezes_even_when_the_program_exits_with_an_error() -> None:
    out = run_python(
        """
        import gc, sys
        import drillbook.cli
        def fail():
            sys.exit(3)
        drillbook.cli.main = fail
        from drillbook.__main__ import main
        try:
            main()
        except SystemExit as exc:
            print(exc.code, gc.get_freeze_count() > 0)
        """
    )
    assert out == "3 True"


def test_importing_drillbook_leaves_the_interpreter_as_it_was() -> None:
    # A project's own `invoke` imports drillbook's tasks: its interpreter must not change.
    out = run_python(
        """
        import gc
        before = gc.get_threshold()
        import drillbook, drillbook.cli, drillbook.tasks, drillbook.__main__
        print(gc.get_threshold() == before, gc.get_freeze_count())
        """
    )
    assert out == "True 0"


def test_a_console_that_cannot_show_a_character_gets_a_stand_in_not_a_crash(tmp_path) -> None:
    # A stdout in ASCII (PYTHONIOENCODING=ascii, a legacy locale) and a path outside it.
    from pathlib import Path

    fixture = (
        Path(__file__).resolve().parents[1] / "fixtures" / "runbooks" / "good" / "minimal.yaml"
    )
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "démo.yaml").write_text(fixture.read_text())
    env = {"PATH": "/usr/bin:/bin", "PYTHONIOENCODING": "ascii", "NO_COLOR": "1"}

    done = subprocess.run(
        [sys.executable, "-m", "drillbook", "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "internal error" not in done.stderr
    assert "runbooks/d?mo.yaml" in done.stdout


def test_a_home_that_is_not_a_folder_is_a_home_without_config_files(tmp_path) -> None:
    # HOME=/dev/null is how some services and CI images say "no home"; invoke looked for
    # /dev/null/.invoke.yaml and stopped every command with a traceback.
    import os

    env = {**os.environ, "HOME": os.devnull}
    env.pop("XDG_CACHE_HOME", None)

    done = subprocess.run(
        [sys.executable, "-m", "drillbook", "--version"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith("drillbook ")


def test_ctrl_c_while_the_program_loads_exits_130_without_a_traceback() -> None:
    # A real SIGINT, sent to this process while drillbook imports invoke: as if the person
    # pressed Ctrl-C a moment after typing the command.
    code = """
        import builtins, os, signal
        real_import = builtins.__import__

        def importing(name, *args, **kwargs):
            if name == "invoke":
                os.kill(os.getpid(), signal.SIGINT)
            return real_import(name, *args, **kwargs)

        builtins.__import__ = importing
        import sys
        sys.argv = ["drillbook", "--help"]
        from drillbook.__main__ import main
        main()
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 130, done
    assert done.stderr == "drillbook: interrupted (SIGINT) while starting; nothing ran\n"
    assert done.stdout == ""


def _drillbook(args: list[str], cwd, **environ: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, **environ}
    return subprocess.run(
        [sys.executable, "-m", "drillbook", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        (".invoke.yaml", "x: [\n", "cannot read the invoke config file"),
        (".invoke.json", "[1\n", "cannot read the invoke config file"),
        (".invoke.yaml", "- a list\n", "holds a list, expected a mapping of settings"),
    ],
)
def test_a_broken_invoke_config_file_in_home_is_one_line_not_a_traceback(
    tmp_path, name: str, text: str, said: str
) -> None:
    (tmp_path / name).write_text(text)
    done = _drillbook(["--version"], tmp_path, HOME=str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("drillbook: ")
    assert said in done.stderr
    assert str(tmp_path / name) in done.stderr
    assert "hint: fix it or move it away; nothing ran" in done.stderr


def _as_a_stranger(argv: list[str]) -> list[str]:
    """`argv` run so that permissions apply to it: as it is for a user other than root; for
    root, in a user namespace (`unshare`), where a folder owned by a user the namespace does
    not map is closed to it as to anyone else."""
    import os
    import shutil

    if os.geteuid() != 0:
        return argv
    unshare = shutil.which("unshare")
    probe = [unshare, "--user", "--map-root-user", "true"] if unshare else None
    if probe is None or subprocess.run(probe, capture_output=True, check=False).returncode:
        pytest.skip("needs a user other than root, or unshare with user namespaces")
    return [unshare, "--user", "--map-root-user", *argv]


@pytest.mark.parametrize("inside", ["", "deeper"])
def test_a_home_this_user_cannot_enter_is_a_home_without_config_files(
    tmp_path, inside: str
) -> None:
    # `docker run --user 1000` in an image that sets HOME=/root, or `sudo -u` keeping HOME: the
    # home is another user's. Every command, `--version` included, stopped with exit 2 saying
    # "cannot read the invoke config file /root/.invoke.yaml: Permission denied".
    import os

    home = tmp_path / "home"
    home.mkdir()
    (home / ".invoke.yaml").write_text("tasks: {dedupe: false}\n")
    home.chmod(0o700)
    if os.geteuid() == 0:
        os.chown(home, 54321, 54321)  # a user no namespace of the test maps
    else:
        home.chmod(0)
    argv = _as_a_stranger([sys.executable, "-m", "drillbook", "--version"])
    env = {**os.environ, "HOME": str(home / inside) if inside else str(home)}
    env.pop("XDG_CACHE_HOME", None)
    try:
        done = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        home.chmod(0o700)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("drillbook ")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["-f", "{tmp}", "schema"], "Config files of type '' (from file '{tmp}')"),
        (["-f", "{tmp}/broken.yaml", "schema"], "cannot read the invoke config file"),
        (["--list-depth", "x", "--list"], "--list-depth expects a whole number, got 'x'"),
        (["-Dx", "--list"], "--list-depth expects a whole number, got 'x'"),
        (["--command-timeout=1.5", "check"], "--command-timeout expects a whole number, got '1.5'"),
    ],
)
def test_a_core_option_invoke_cannot_use_is_a_usage_error(tmp_path, args, said: str) -> None:
    (tmp_path / "broken.yaml").write_text("x: [\n")
    done = _drillbook([a.format(tmp=tmp_path) for a in args], tmp_path, HOME=str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"drillbook: {said.format(tmp=tmp_path)}" in done.stderr


def _drillbook_on_a_terminal(args: list[str], cwd, columns: int) -> tuple[int, str]:
    """Run drillbook with a pseudo-terminal of `columns` columns as its stdout and stderr."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "drillbook", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the terminal's other side is closed, drillbook has ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    return proc.wait(timeout=60), b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.parametrize("args", [["--help"], ["release", "--help"], ["--list"]])
def test_help_on_a_terminal_narrower_than_the_option_names_is_shown(tmp_path, args) -> None:
    code, text = _drillbook_on_a_terminal(args, tmp_path, columns=30)
    assert code == 0, text
    assert "Traceback" not in text
    assert "wrong type" not in text
    assert "--version" in text or "rollback" in text


def test_help_is_wrapped_to_columns_when_it_is_set(tmp_path) -> None:
    wide = _drillbook(["release", "--help"], tmp_path, COLUMNS="200")
    assert wide.returncode == 0, wide.stderr
    assert (
        "-y, --yes                     do not ask before releasing to an environment other "
        "than staging\n"
    ) in wide.stdout
    narrow = _drillbook(["release", "--help"], tmp_path, COLUMNS="60")
    assert narrow.returncode == 0, narrow.stderr
    options = narrow.stdout.split("Options:\n", 1)[1]
    assert max(len(line) for line in options.splitlines()) <= 60
    assert "-y, --yes                     do not ask before releasing\n" in options


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--list=nosuch"],
            "--list=nosuch: no collection 'nosuch'; drillbook's tasks are all in one",
        ),
        (["-l", "nosuch"], "--list=nosuch: no collection 'nosuch'"),
        (
            ["--list-format=table", "--list"],
            "--list-format expects flat, nested or json, got 'table'",
        ),
        (["--list-format", "table"], "--list-format expects flat, nested or json, got 'table'"),
        (["-F", "json", "-D", "1", "--list"], "--list-depth does not go with --list-format json"),
    ],
)
def test_a_list_option_with_a_wrong_value_is_a_usage_error(tmp_path, args, said: str) -> None:
    done = _drillbook(args, tmp_path)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"drillbook: {said}")
    assert "hint: " in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("shape", ["flat", "nested", "json"])
def test_every_list_format_lists_the_tasks(tmp_path, shape: str) -> None:
    done = _drillbook(["--list", "--list-format", shape], tmp_path)
    assert done.returncode == 0, done
    assert "rollback-note" in done.stdout


@pytest.mark.parametrize(
    "args",
    [["--help"], ["release", "--help"], ["--list"], ["--version"], ["relase"], ["check", "--x"]],
)
def test_help_and_usage_errors_start_without_the_heavy_libraries(tmp_path, args) -> None:
    # What a person types to find their way, and their typos, answer at once: the runbook
    # model, HTTP, templates and drillbook's YAML loader load only for a task that needs
    # them. (PyYAML itself is loaded by invoke, whose vendored yaml uses its C parser.)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "drillbook", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 2), done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines}
    assert "drillbook.cli" in imported, done.stderr
    heavy = {"pydantic", "requests", "jinja2", "drillbook.yamlsafe", "drillbook.model"}
    assert not imported & heavy


@pytest.mark.parametrize(
    ("args", "said", "hint"),
    [
        (["--dry", "schema"], "--dry", "`drillbook plan` or `drillbook release --dry-run`"),
        (["deploy", "-R", "--version", "1.0.0"], "--dry", "`drillbook release --dry-run`"),
        (["-w", "schema"], "--warn-only", ""),
        (["-T", "5", "schema"], "--command-timeout", "the runbook's `timeout` of its step"),
        (["--hide=both", "schema"], "--hide", ""),
    ],
)
def test_invokes_options_for_c_run_are_refused_not_ignored(tmp_path, args, said, hint) -> None:
    # `drillbook --dry deploy` deployed: the help said "Echo commands instead of running".
    done = _drillbook(args, tmp_path)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.startswith(
        f"drillbook: {said} is invoke's, for its `c.run`, which no task of drillbook's uses: "
        "it would change nothing\n"
    ), done.stderr
    assert done.stderr.splitlines()[1].startswith("  hint: ")
    assert hint in done.stderr.splitlines()[1]


def test_help_lists_no_option_for_c_run(tmp_path) -> None:
    done = _drillbook(["--help"], tmp_path)
    assert done.returncode == 0, done
    core = done.stdout.split("Core options:", 1)[1]
    assert "--list-format" in core
    for name in ("--dry", "--warn-only", "--echo", "--pty", "--hide", "--command-timeout"):
        assert name not in core
