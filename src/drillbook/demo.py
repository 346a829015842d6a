"""The bundled tour: the demo service in a fresh git workspace, and the story its runbook tells.

`prepare_workspace` copies the bundled demo service into an empty folder, places its runbook at
`runbooks/demo-service.yaml` with staging on a free loopback port, and commits it all in a new
git repository with a local identity, no hooks, no signing and no line-ending conversion.
`story` lists the acts: each is a real `drillbook` command run as a subprocess in the workspace,
with the exit code and the state of the world the story expects afterwards; `verify` compares.
`stop_staging` stops every server the story started, however it ended. `Compact` keeps the lines
of a command's output that tell the story.

Nothing here prints: the task layer (`drillbook.tasks.demo`) narrates.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from drillbook.errors import PreconditionFailed, UsageError
from drillbook.process import CommandResult, StopToken, run_command
from drillbook.resources import resource

SERVICE = "demo-service"
RUNBOOK = f"runbooks/{SERVICE}.yaml"
INSTALL_HINT = "pip install 'drillbook[demo]'"
#: Modules the demo needs beyond drillbook's own: the service (fastapi, uvicorn), and its gates,
#: which run its tests (pytest, with httpx under FastAPI's test client) and lint it (ruff).
REQUIRED_MODULES = ("fastapi", "uvicorn", "httpx", "pytest", "ruff")
#: Left out of the copy: runtime state and caches of a checkout where the service ran.
SKIPPED = ("var", ".drillbook", "__pycache__", ".pytest_cache", ".ruff_cache", "notes", "reports")
GIT_IDENTITY = ("drillbook demo", "demo@drillbook.invalid")
#: The workspace's own git settings. The user's global hooks, templates and signing are meant for
#: their repositories: a company's commit-msg policy or a gpg the demo cannot use would stop it.
GIT_SETTINGS = (
    ("user.name", GIT_IDENTITY[0]),
    ("user.email", GIT_IDENTITY[1]),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("tag.forceSignAnnotated", "false"),
    ("core.hooksPath", os.devnull),
    # The bundled files are committed as they are: a global `core.autocrlf` with `safecrlf`
    # refuses them (LF would become CRLF), and `core.excludesFile` could leave some untracked.
    ("core.autocrlf", "false"),
    ("core.safecrlf", "false"),
    ("core.excludesFile", os.devnull),
)
#: Set in the environment of every command of the story, and so inherited by every process
#: they start: how the demo tells what it started from a user's `tail -f var/...`.
WORKSPACE_MARK = "DRILLBOOK_DEMO_WORKSPACE"
#: Each act is one drillbook command; a hung one is stopped rather than waited for forever.
ACT_TIMEOUT_S = 180.0
#: Time a stopped drillbook gets to stop its own step and write its journal before SIGKILL.
ACT_GRACE_S = 10.0
_GIT_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY")
#: Settings given through the environment (`git -c` passes them on to what it runs, and
#: GIT_CONFIG_COUNT sets them for a shell) outrank the workspace's own, signing and hooks too.
_GIT_CONFIG_VARS = re.compile(r"^GIT_CONFIG_(PARAMETERS|COUNT|KEY_\d+|VALUE_\d+)$")


class DemoUnavailable(UsageError):
    """The demo's extra is not installed; nothing ran (exit 2)."""


# --- the workspace ----------------------------------------------------------------------------


def missing_modules(find: Callable[[str], object] = importlib.util.find_spec) -> list[str]:
    """The modules of the `demo` extra this interpreter cannot import."""
    return [name for name in REQUIRED_MODULES if find(name) is None]


def require_extra() -> None:
    """Raise DemoUnavailable when the `demo` extra is missing."""
    missing = missing_modules()
    if missing:
        msg = (
            f"the demo needs {', '.join(missing)}, which {sys.executable} cannot import: they "
            "come with the `demo` extra"
        )
        raise DemoUnavailable(msg, hint=f"{INSTALL_HINT}, then run `drillbook demo` again")


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port that was free a moment ago (the kernel picks it).

    Raises PreconditionFailed when the kernel has none to give (every port of its ephemeral
    range is in use): as a plain OSError it read as a folder that cannot be written.
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])
    except OSError as exc:
        msg = f"no free TCP port on {host} for the demo's staging server: {exc.strerror or exc}"
        hint = (
            "close what holds the ports of net.ipv4.ip_local_port_range (`ss -tan` lists them), "
            "then run `drillbook demo` again"
        )
        raise PreconditionFailed(msg, hint=hint) from None


def port_held(url: str) -> bool:
    """Whether something holds the loopback port of `url` now (a bind to it fails)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As uvicorn binds: a port left in TIME_WAIT by our own stopped server is not held.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass(frozen=True)
class Workspace:
    """The demo's project: a git repository with the service, its runbook and staging's url."""

    root: Path
    url: str
    temporary: bool
    env: dict[str, str] = field(repr=False)

    @property
    def note(self) -> Path:
        """Where release 1.1.0 writes its rollback note."""
        return self.root / "notes" / f"{SERVICE}-1.1.0-rollback.md"

    @property
    def pid_file(self) -> Path:
        """The pid file of the staging server (written by the service's deploy.py)."""
        return self.root / "var" / "staging" / "server.pid"


def _empty_target(target: Path) -> Path:
    target = target.expanduser().absolute()
    if target.is_symlink() and not target.exists():
        msg = f"--keep {target}: it is a symbolic link to {target.readlink()}, which does not exist"
        raise UsageError(msg, hint="name a new folder, or an empty one")
    if target.exists():
        if not target.is_dir():
            msg = f"--keep {target}: it exists and is not a folder"
            raise UsageError(msg, hint="name a new folder, or an empty one")
        if any(target.iterdir()):
            msg = f"--keep {target}: the folder is not empty, and the demo builds a new project"
            raise UsageError(msg, hint="name a new folder, or an empty one")
    return target


def path_folders(root: Path) -> list[str]:
    """The folders put before PATH for the story's commands: the workspace's `python` shim,
    then this interpreter's script folders (drillbook, ruff, pytest)."""
    folders = [str(root / ".drillbook" / "bin"), sysconfig.get_path("scripts")]
    if sys.prefix == sys.base_prefix:  # not a virtual environment: maybe a `pip install --user`
        with contextlib.suppress(KeyError):
            folders.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    here = str(Path(sys.executable).parent)
    if here not in folders:
        folders.append(here)
    return folders


def go_on_line(root: Path) -> str:
    """The shell line that makes the workspace's commands work as they did in the story: the
    folder, and this drillbook and the Python its runbook needs first on PATH. Without it,
    `drillbook` may not be found (the tour is often run as `.venv/bin/drillbook demo`), and
    `python deploy.py` would be another Python's, without the demo's packages."""
    path = shlex.quote(os.pathsep.join(path_folders(root)))
    return f'cd {shlex.quote(str(root))} && export PATH={path}{os.pathsep}"$PATH"'


def child_environment(root: Path) -> dict[str, str]:
    """The environment of every command of the story.

    The runbook runs `python deploy.py`, `ruff` and `pytest` from PATH. They must be this
    interpreter's, with this interpreter's packages, whatever PATH holds: a `python` shim in the
    workspace's git-ignored `.drillbook/bin` and this interpreter's script folders come first.
    """
    shim_dir = root / ".drillbook" / "bin"
    shim_dir.mkdir(parents=True, exist_ok=True)
    shim = shim_dir / "python"
    # In the bytes of the interpreter's path: a venv under `café` in a locale that is not
    # UTF-8 has a path UTF-8 cannot write, and the demo stopped with an internal error.
    command = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n'
    shim.write_bytes(os.fsencode(command))
    shim.chmod(0o755)
    folders = path_folders(root)
    env = {
        k: v for k, v in os.environ.items() if k not in _GIT_VARS and not _GIT_CONFIG_VARS.match(k)
    }
    env["PATH"] = os.pathsep.join([*folders, env.get("PATH", os.defpath)])
    env[WORKSPACE_MARK] = str(root)
    # The story's temporary files (pytest's, in the unit gate) go to the git-ignored
    # `.drillbook/tmp`: where no temporary folder is writable Python falls back to the current
    # one, the workspace itself, and the next release found its tree dirty and refused.
    temp = root / ".drillbook" / "tmp"
    temp.mkdir(exist_ok=True)
    env["TMPDIR"] = str(temp)
    # Options meant for another test run must not change the demo's own unit gate.
    env.pop("PYTEST_ADDOPTS", None)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    # Their output reaches the demo through pipes read as UTF-8, whatever the terminal shows.
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _git(root: Path, *args: str, env: dict[str, str]) -> None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        msg = "the demo makes a git repository, and git is not installed"
        raise PreconditionFailed(msg, hint="install git, then run `drillbook demo` again") from None
    if done.returncode != 0:
        msg = f"`git {' '.join(args)}` failed in {root}: {done.stderr.strip()[-500:]}"
        raise PreconditionFailed(msg)


def _require_own_repository(root: Path, env: dict[str, str]) -> None:
    """Raise PreconditionFailed when git will not work in the new repository (its folder is
    another user's: git's safe.directory check), which later reads as "not in a git directory".
    """
    try:
        _git(root, "rev-parse", "--git-dir", env=env)
    except PreconditionFailed as exc:
        if "dubious ownership" not in str(exc):
            raise
        msg = (
            f"--keep {root}: the folder belongs to another user, and git refuses to work in a "
            "repository there (its safe.directory check)"
        )
        hint = "name a new folder, or an empty one of yours, or leave --keep out"
        raise PreconditionFailed(msg, hint=hint) from None


def demo_runbook(port: int) -> tuple[str, str]:
    """The bundled demo runbook with staging on `port`, and staging's url."""
    from drillbook.scaffold import SCHEMA_LINE

    text = resource("demo-runbook").read_text(encoding="utf-8")
    staging = re.compile(r"(?m)^(\s+staging:\s*\n\s+url:\s*)(http://127\.0\.0\.1:)\d+\s*$")
    url = f"http://127.0.0.1:{port}"
    text, count = staging.subn(lambda m: f"{m.group(1)}{url}", text)
    if count != 1:  # the bundled file and this code travel together; a mismatch is a bug
        msg = "the bundled demo runbook has no `staging:` environment with a loopback url"
        raise RuntimeError(msg)
    # In the workspace the schema sits beside the runbook, as `drillbook init` places it.
    text = re.sub(r"(?m)^# yaml-language-server: \$schema=\S+$", SCHEMA_LINE, text, count=1)
    return text, url


def prepare_workspace(target: Path | None = None) -> Workspace:
    """Copy the demo service into a new git repository (a temporary folder, or `target`).

    A set-up that fails or is interrupted takes away what it made: a temporary folder goes, and
    `target` is left as it was found (absent, or empty), so the same command can run again.
    """
    if target is None:
        try:
            root = Path(tempfile.mkdtemp(prefix="drillbook-demo-", dir=_temporary_base()))
        except OSError as exc:
            msg = f"cannot make the demo's workspace in a temporary folder: {exc}"
            hint = "set TMPDIR to a folder you can write, or name one with --keep DIR"
            raise PreconditionFailed(msg, hint=hint) from None
        return _build_or_undo(root, temporary=True, made=True)
    root = _empty_target(target)
    return _build_or_undo(root, temporary=False, made=not root.exists())


def _temporary_base() -> str:
    """Where a temporary workspace goes: Python's temporary folder, unless that is only its
    last resort, the current folder (when TMPDIR, /tmp and the rest cannot be written)."""
    base = Path(tempfile.gettempdir()).resolve()
    named = [os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")]
    usual = [Path(p).resolve() for p in [*named, "/tmp", "/var/tmp", "/usr/tmp"] if p]  # noqa: S108
    if base == Path.cwd().resolve() and base not in usual:
        # A new repository in the user's folder, maybe their own project's tree, is no
        # temporary folder: their next release would find it there, untracked.
        msg = "no temporary folder can be written (TMPDIR, /tmp, /var/tmp, /usr/tmp)"
        hint = "set TMPDIR to a folder you can write, or name one with --keep DIR"
        raise PreconditionFailed(msg, hint=hint)
    return str(base)


def _build_or_undo(root: Path, *, temporary: bool, made: bool) -> Workspace:
    try:
        return _build(root, temporary)
    except BaseException:
        _undo(root, made=made)
        raise


def _undo(root: Path, *, made: bool) -> None:
    """Remove what a set-up made in `root`: the folder itself when it made it."""
    if made:
        shutil.rmtree(root, ignore_errors=True)
        return
    with contextlib.suppress(OSError):
        for child in root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def _build(root: Path, temporary: bool) -> Workspace:
    from drillbook.files import write_atomic
    from drillbook.scaffold import SCHEMA_PATH, schema_text

    try:
        shutil.copytree(
            resource("demo-service"),
            root,
            ignore=shutil.ignore_patterns(*SKIPPED),
            symlinks=True,
            dirs_exist_ok=True,
        )
        text, url = demo_runbook(free_port())
        write_atomic(root / RUNBOOK, text)
        write_atomic(root / SCHEMA_PATH, schema_text())
        env = child_environment(root)
    except OSError as exc:
        msg = f"cannot make the demo's workspace in {root}: {exc.strerror or exc}"
        hint = (
            "set TMPDIR to a folder you can write, or name one with --keep DIR"
            if temporary
            else "give --keep a folder you can write, or leave it out for a temporary folder"
        )
        raise PreconditionFailed(msg, hint=hint) from None
    git_env = {**env, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    # No template: the user's `init.templateDir` could bring hooks or an `info/exclude`.
    _git(root, "-c", "init.defaultBranch=main", "init", "-q", "--template=", env=git_env)
    _require_own_repository(root, git_env)
    for key, value in GIT_SETTINGS:
        _git(root, "config", key, value, env=git_env)
    _git(root, "add", "-A", env=git_env)
    message = "The demo service as it runs today"
    _git(root, "commit", "-q", "--no-verify", "-m", message, env=git_env)
    return Workspace(root.resolve(), url, temporary, env)


# --- the story --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Act:
    """One command of the story and what the story expects of it."""

    key: str  # setup, release-1.1.0, rehearse, release-1.2.0, docs, history
    label: str  # the table's first column
    args: tuple[str, ...]  # drillbook's arguments
    exit: int  # the exit code the story expects
    expected: str  # the table's words for what is expected
    story: tuple[str, ...] = ()  # what a newcomer reads before it runs
    quiet: bool = False  # one line, no output


def story() -> list[Act]:
    """The acts, in order."""
    return [
        Act(
            "setup",
            "set-up",
            ("release", "--version", "1.0.0"),
            0,
            "exit 0, tag v1.0.0",
            quiet=True,
        ),
        Act(
            "release-1.1.0",
            "1 release 1.1.0",
            ("release", "--version", "1.1.0"),
            0,
            "exit 0, tag v1.1.0, rollback note",
            (
                "alice's change records who changed an order in the admin area. The release runs",
                "the whole checklist: lint, unit tests, the staging config, the deploy, the",
                "expected checks of every change, then the tag and the rollback note.",
            ),
        ),
        Act(
            "rehearse",
            "2 rehearse 1.1.0",
            ("rehearse", "--version", "1.1.0"),
            0,
            "exit 0, report",
            (
                "A rollback nobody has tried is a hope. The rehearsal rolls staging back to 1.0.0",
                "the way the runbook says, checks it, deploys 1.1.0 again, and times both ways.",
            ),
        ),
        Act(
            "release-1.2.0",
            "3 release 1.2.0",
            ("release", "--version", "1.2.0"),
            4,
            "exit 4, no tag v1.2.0, staging on 1.1.0",
            (
                "bob's change shows each customer's tier in the admin order list, and looks it up",
                "once per row: the page gets slow. The runbook expects p95 under 300 ms. Watch the",
                "check fail, the release roll itself back to 1.1.0 and prove it with the rollback",
                "checks. It exits 4 (failed, rolled back, proven): the story going as told.",
            ),
        ),
        Act(
            "docs",
            "4 docs",
            ("docs",),
            0,
            "exit 0, docs index",
            (
                "For the person on call: the runbook as Markdown and a static HTML site, with the",
                "owners, the checks and how to undo each change.",
            ),
        ),
        Act(
            "history",
            "5 history",
            ("history",),
            0,
            "exit 0",
            (
                "The journal read back: what changed on staging, when, who owns it, and the",
                "command that undoes it.",
            ),
        ),
    ]


def run_act(
    ws: Workspace,
    act: Act,
    *,
    on_line: Callable[[str], None] | None = None,
    stop: StopToken | None = None,
    timeout: float = ACT_TIMEOUT_S,
) -> CommandResult:
    """Run the act's command in the workspace: `python -m drillbook ARGS`."""
    return run_command(
        [sys.executable, "-m", "drillbook", *act.args],
        cwd=ws.root,
        env=ws.env,
        inherit_env=False,
        timeout=timeout,
        grace=ACT_GRACE_S,
        on_line=on_line,
        tail_lines=200,
        stop=stop,
    )


@dataclass(frozen=True)
class Verdict:
    """How an act ended, against what the story expects."""

    as_told: bool
    got: str
    artifact: Path | None = None


def _tags(ws: Workspace) -> set[str]:
    from drillbook import gitops

    return set(gitops.tags(ws.root))


def staging_version(url: str, timeout: float = 3.0) -> str | None:
    """The version staging says it runs (`GET /version`), or None when it does not answer."""
    # No proxies: staging is on loopback, and a proxy from the environment must not see it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/version", timeout=timeout) as response:
            data = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return str(version) if version is not None else None


def _newest(folder: Path, pattern: str, since: float) -> Path | None:
    if not folder.is_dir():
        return None
    found = [p for p in folder.rglob(pattern) if p.is_file() and p.stat().st_mtime >= since]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def docs_index(ws: Workspace) -> Path | None:
    """The HTML docs' index page that `drillbook docs` wrote, if it did."""
    from drillbook.docs import DEFAULT_OUT

    found = ws.root / DEFAULT_OUT / "index.html"
    return found if found.is_file() else None


def verify(ws: Workspace, act: Act, result: CommandResult, started_wall: float) -> Verdict:
    """Whether the act ended as the story says, and what was found."""
    code = result.exit
    got = [f"exit {code}" if code is not None else result.detail]
    ok = code == act.exit
    artifact: Path | None = None
    if act.key in ("setup", "release-1.1.0"):
        tag = "v1.0.0" if act.key == "setup" else "v1.1.0"
        has = tag in _tags(ws)
        ok = ok and has
        got.append(f"tag {tag}" if has else f"no tag {tag}")
        if act.key == "release-1.1.0":
            artifact = ws.note if ws.note.is_file() else None
            ok = ok and artifact is not None
            got.append("rollback note" if artifact else "no rollback note")
    elif act.key == "rehearse":
        reports = ws.root / "reports"
        artifact = _newest(reports, "*.md", started_wall - 1) or _newest(
            reports, "*", started_wall - 1
        )
        ok = ok and artifact is not None
        got.append("report" if artifact else "no report")
    elif act.key == "release-1.2.0":
        tagged = "v1.2.0" in _tags(ws)
        running = staging_version(ws.url)
        ok = ok and not tagged and running == "1.1.0"
        got.append("tag v1.2.0!" if tagged else "no tag v1.2.0")
        got.append(f"staging on {running}" if running else "staging does not answer")
    elif act.key == "docs":
        artifact = docs_index(ws)
        ok = ok and artifact is not None
        got.append("docs index" if artifact else "no docs index")
    return Verdict(ok, ", ".join(got), artifact)


# --- stopping what the story started ------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    from drillbook.process import proc_stat

    state = proc_stat(pid)[:1]  # [] without /proc: kill(pid, 0) said it exists
    return state not in ([b"Z"], [b"X"])


def processes_of(root: Path) -> list[int]:
    """Live pids the story started in the workspace (its servers, a step cut short); Linux only.

    They are known by WORKSPACE_MARK in their environment, not by their command line: a user's
    `tail -f` of the workspace's log names the workspace too, and is not the demo's to stop.
    """
    # As the environment reached them: encoded as file names are (surrogateescape).
    marks = {os.fsencode(f"{WORKSPACE_MARK}={where}") for where in (root, root.resolve())}
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        pid = int(entry.name)
        if not marks.isdisjoint(environ) and pid != os.getpid() and _alive(pid):
            found.append(pid)
    return found


def _terminate(pids: Iterable[int], grace: float = 3.0) -> list[int]:
    """TERM each pid's group (a server leads its own), then KILL what outlives `grace`."""
    pids = list(pids)
    for pid in pids:
        for send in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                send(pid, signal.SIGTERM)
                break
    deadline = time.monotonic() + grace
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return pids


def stop_staging(ws: Workspace) -> list[str]:
    """Stop every server of the workspace: deploy.py's own stop, then any process left over.

    Returns what was done, a line each. Safe to call twice and after a failure at any point.
    """
    said: list[str] = []
    if (ws.root / "deploy.py").is_file():
        result = run_command(
            [sys.executable, "deploy.py", "--env", "staging", "--stop"],
            cwd=ws.root,
            env=ws.env,
            inherit_env=False,
            timeout=30,
        )
        command = "`python deploy.py --env staging --stop`"
        if result.exit == 0:
            said.append(f"stopped by {command} ({result.detail})")
        else:
            # Not "stopped by": what it said comes along, and the leftovers below are stopped.
            last = result.output_tail.strip().splitlines()[-1:] or [""]
            said.append(f"{command} failed ({result.detail}): {last[0]}".rstrip(": "))
    leftovers: set[int] = set()
    with contextlib.suppress(OSError, ValueError):
        pid = int(ws.pid_file.read_text().strip())
        if _alive(pid):
            leftovers.add(pid)
    leftovers.update(processes_of(ws.root))
    if leftovers:
        _terminate(sorted(leftovers))
        said.append(f"stopped leftover process(es) {', '.join(map(str, sorted(leftovers)))}")
    return said


# --- what of a command's output tells the story ---------------------------------------------------

_STEP = re.compile(r"^\[(?:rollback )?(\d+)/(\d+)\] (.*)$")
_STEP_END = re.compile(
    r"^\s+(ok|done|failed|skipped|timeout|interrupted|error|not_found)\s+(\S+)\s+\(([\d.]+s)\)(.*)$"
)
_TOOL = re.compile(r"^\s+\S+ │ ?(.*)$")
_CHECK = re.compile(r"^(\s+)(pass|fail|inconclusive) (.*)$")
_ATTEMPT = re.compile(r"\s*\([^()]*attempt \d+/\d+[^()]*\)\s*$")


class Compact:
    """Turns a command's output into the lines worth reading: one per step, every check,
    the rollback, the digest and the outcome; a failed step also shows the tool's last lines.
    """

    def __init__(self, width: int = 100) -> None:
        self.width = width
        self.pending: str | None = None
        self.tool_tail: deque[str] = deque(maxlen=6)

    def _cut(self, line: str) -> str:
        return line if len(line) <= self.width else line[: self.width - 1] + "…"

    def feed(self, line: str) -> list[str]:
        """The lines to show for one line of output (often none)."""
        if not line.strip():
            return []
        step = _STEP.match(line)
        if step:
            out = self.flush()
            self.pending = line
            self.tool_tail.clear()
            return out
        end = _STEP_END.match(line)
        if end and self.pending is not None:
            outcome, _, took, rest = end.groups()
            shown = [self._cut(f"{self.pending}  {outcome} {took}{rest}")]
            if outcome not in ("ok", "done", "skipped"):
                shown += [self._cut(f"      │ {t}") for t in self.tool_tail]
            self.pending = None
            self.tool_tail.clear()
            return shown
        tool = _TOOL.match(line)
        if tool:
            self.tool_tail.append(tool.group(1))
            return []
        out = self.flush()
        check = _CHECK.match(line)
        if check:
            indent, outcome, text = check.groups()
            text = _ATTEMPT.sub("", text)
            return [*out, self._cut(f"{indent}{outcome} {text}")]
        return [*out, self._cut(line)]

    def flush(self) -> list[str]:
        """A step title still waiting for its outcome line (the checks come between)."""
        if self.pending is None:
            return []
        line, self.pending = self.pending, None
        return [self._cut(line)]
