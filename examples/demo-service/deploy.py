"""Deploy one version of the demo service to one environment, the Capistrano way.

    python deploy.py --env staging --version 1.1.0 --url http://127.0.0.1:8181
    python deploy.py --env staging --status
    python deploy.py --env staging --stop

A deploy copies the code into `var/{env}/releases/{version}/` with a `VERSION` file, points
`var/{env}/current` at it atomically, stops the env's running server, starts uvicorn detached
on the loopback host and port of `--url`, and waits until `GET /health` answers the new version
from the server it started (each start gets an instance id that /health repeats, so an answer
from another process on the port does not count).
The last 5 releases are kept. Settings come from `config/{env}.env` and reach the server as
environment variables, never as arguments. Standard library only.

Exit codes: 0 done, 1 failed, 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import importlib.util
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent
CODE = ("app",)  # what a release holds, copied from the project root
KEEP_RELEASES = 5
POLL_INTERVAL_S = 0.02
STOP_GRACE_S = 5.0
KILL_WAIT_S = 2.0
DEFAULT_URL = "http://127.0.0.1:8181"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
TAIL_LINES = 40

_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# Semver; the version becomes a folder name, so nothing else (no '/', no '..') is accepted.
_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class DeployError(Exception):
    """The deploy failed; exit 1. `detail` is printed after the message (a log tail)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class UsageError(DeployError):
    """The command line asks for something this script will not do; exit 2."""

    exit_code = EXIT_USAGE


def say(line: str) -> None:
    """One line of progress on stdout, flushed so a caller sees it as it happens."""
    print(line, flush=True)


def shown(path: Path) -> str:
    """A path as printed: relative to the project root when inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class EnvPaths:
    """Where one environment's releases, link, logs and server state live."""

    root: Path
    env: str

    @property
    def base(self) -> Path:
        """`var/{env}`."""
        return self.root / "var" / self.env

    @property
    def releases(self) -> Path:
        """`var/{env}/releases`, one folder per version."""
        return self.base / "releases"

    @property
    def current(self) -> Path:
        """`var/{env}/current`, the symlink to the live release."""
        return self.base / "current"

    @property
    def logs(self) -> Path:
        """`var/{env}/logs`."""
        return self.base / "logs"

    @property
    def server_out(self) -> Path:
        """uvicorn's own stdout and stderr."""
        return self.logs / "uvicorn.out"

    @property
    def pid_file(self) -> Path:
        """The pid of the running server."""
        return self.base / "server.pid"

    @property
    def state_file(self) -> Path:
        """What the running server is: pid, version, url, start time."""
        return self.base / "server.json"

    @property
    def lock_file(self) -> Path:
        """Held for the whole deploy, so two deploys of one env never interleave."""
        return self.base / "deploy.lock"


# --- settings and arguments --------------------------------------------------------------------


def parse_env_file(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines; `#` comments, blank lines, `export ` and surrounding quotes allowed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeployError(f"config file {shown(path)} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeployError(f"config file {shown(path)} cannot be read: {exc}") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _ENV_KEY.match(key):
            # The line may hold a secret: name the place, never the content.
            raise DeployError(f"{shown(path)}:{number}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def loopback_address(url: str) -> tuple[str, int]:
    """The host and port of an `http://` URL on the loopback interface; UsageError otherwise."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or ""
    if parts.scheme != "http" or host not in LOOPBACK_HOSTS or port is None or port == 0:
        raise UsageError(
            f"--url must be http://127.0.0.1:PORT or http://localhost:PORT (the demo serves on "
            f"loopback only), got {url!r}"
        )
    return host, port


# --- processes ---------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the signal probe is all there is
    # The state letter follows the command name, which is in parentheses and may hold spaces.
    return stat.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])


def _command_line(pid: int) -> str | None:
    """The process's command line, or None when it cannot be read.

    Decoded as this process decodes its own paths (`os.fsdecode`), so that a path in it
    compares equal to the same `Path` here whatever the locale: decoded as UTF-8 it did not
    under a non-UTF-8 one (LC_ALL=C with PYTHONUTF8=0 and a project under `café/`), and a byte
    that is not UTF-8 stopped the deploy.
    """
    try:
        return os.fsdecode(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" "))
    except OSError:
        pass
    try:
        done = subprocess.run(
            ["ps", "-p", str(pid), "-o", "command="],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return os.fsdecode(done.stdout.strip()) or None


def is_our_server(pid: int, paths: EnvPaths) -> bool:
    """Whether the pid is this env's uvicorn, so a pid reused by another program is never hit."""
    command = _command_line(pid)
    if command is None:
        return True  # cannot tell; the pid file is the best knowledge there is
    return "uvicorn" in command and str(paths.current) in command


def read_pid(paths: EnvPaths) -> int | None:
    """The pid in the pid file, or None when there is none or it is not a number."""
    try:
        text = paths.pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def write_atomically(path: Path, text: str) -> None:
    """Replace a file in one step, so a reader never sees it half written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _forget_server(paths: EnvPaths) -> None:
    paths.pid_file.unlink(missing_ok=True)
    paths.state_file.unlink(missing_ok=True)


def _signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal the server's process group (it leads its own session), or the pid alone."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    return True


def stop_server(paths: EnvPaths) -> None:
    """Stop the env's server: TERM, wait, then KILL; a stale pid file is removed."""
    pid = read_pid(paths)
    if pid is None:
        if paths.pid_file.exists():
            _forget_server(paths)
            say(f"  stale    {shown(paths.pid_file)} held no pid; removed")
        return
    if not pid_alive(pid) or not is_our_server(pid, paths):
        _forget_server(paths)
        say(f"  stale    pid {pid} is not running this env's server; pid file removed")
        return
    began = time.monotonic()
    _signal_group(pid, signal.SIGTERM)
    how = "TERM"
    if not _wait_gone(pid, STOP_GRACE_S):
        _signal_group(pid, signal.SIGKILL)
        how = f"TERM, then KILL after {STOP_GRACE_S:g}s"
        if not _wait_gone(pid, KILL_WAIT_S):
            raise DeployError(f"server pid {pid} is still running after TERM and KILL")
    _forget_server(paths)
    say(f"  stopped  pid {pid} ({how}, {time.monotonic() - began:.2f}s)")


def _tail(path: Path, start: int = 0, lines: int = TAIL_LINES) -> str:
    """The last lines of a file written after byte offset `start`."""
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])


def start_server(
    paths: EnvPaths, host: str, port: int, env_vars: dict[str, str], version: str
) -> tuple[subprocess.Popen[bytes], int]:
    """Start uvicorn detached from this process; the process and where its output begins."""
    if importlib.util.find_spec("uvicorn") is None:
        raise DeployError(
            f"uvicorn is not installed for {sys.executable}; install drillbook[demo] "
            "(fastapi and uvicorn)"
        )
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:create_app",
        "--factory",
        "--app-dir",
        str(paths.current),  # the link, not its target: the command line names the env
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",  # the app writes its own request log, as JSON lines
        "--timeout-graceful-shutdown",
        "3",
    ]
    paths.logs.mkdir(parents=True, exist_ok=True)
    with paths.server_out.open("ab") as out:
        out.write(f"--- {_now()} starting {version} on {host}:{port}\n".encode())
        out.flush()
        start = out.tell()
        # Detached: its own session (a signal to the deploy's group does not reach it), stdin
        # from /dev/null and output to a file, so it never holds the caller's pipe open.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=paths.root,
            env=env_vars,
            start_new_session=True,
            close_fds=True,
        )
    return process, start


def _now() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def health(url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The JSON answer of `GET {url}/health`, or None when there is no usable answer."""
    # No proxies: a loopback request must never be sent to an HTTP_PROXY from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url.rstrip("/") + "/health", timeout=timeout) as response:
            body = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError, http.client.HTTPException):
        return None
    return body if isinstance(body, dict) else None


def wait_ready(
    process: subprocess.Popen[bytes], url: str, version: str, instance: str, timeout: float
) -> float:
    """Poll /health until the started server answers the deployed version; the seconds it took.

    The answer must carry the server's `instance`: another process that holds the port (another
    copy of the service, say) may answer the same version while this server fails to bind.
    """
    began = time.monotonic()
    deadline = began + timeout
    while True:
        if process.poll() is not None:
            raise DeployError(f"the server exited with status {process.returncode} while starting")
        answer = health(url, timeout=min(1.0, max(0.05, deadline - time.monotonic())))
        ours = answer is not None and answer.get("instance") == instance
        if ours and answer.get("status") == "ok" and answer.get("version") == version:
            return time.monotonic() - began
        if time.monotonic() >= deadline:
            if answer and not ours:
                seen = "; another process answers on the port"
            else:
                seen = f"; last answer {answer}" if answer else "; no answer"
            raise DeployError(f"/health did not answer version {version} within {timeout:g}s{seen}")
        time.sleep(POLL_INTERVAL_S)


# --- releases ----------------------------------------------------------------------------------


def build_release(paths: EnvPaths, version: str) -> Path:
    """Copy the code into `releases/{version}` (replacing an older copy) and write VERSION."""
    paths.releases.mkdir(parents=True, exist_ok=True)
    target = paths.releases / version
    incoming = paths.releases / f".incoming-{version}-{os.getpid()}"
    shutil.rmtree(incoming, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in CODE:
        source = paths.root / name
        if not source.is_dir():
            raise DeployError(f"{shown(source)} not found: nothing to deploy")
        shutil.copytree(source, incoming / name, ignore=ignore)
    (incoming / "VERSION").write_text(version + "\n", encoding="utf-8")
    if target.exists():
        # Same version again: the fresh copy replaces the old one (renames, no half state).
        retired = paths.releases / f".retired-{version}-{os.getpid()}"
        target.replace(retired)
        incoming.replace(target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        incoming.replace(target)
    return target


def current_target(paths: EnvPaths) -> str | None:
    """Where `current` points (`releases/1.1.0`), or None."""
    try:
        return str(paths.current.readlink())
    except OSError:
        return None


def switch_current(paths: EnvPaths, release: Path) -> str | None:
    """Point `current` at the release atomically (new link, then rename); the old target."""
    previous = current_target(paths)
    if paths.current.exists() and not paths.current.is_symlink():
        raise DeployError(f"{shown(paths.current)} exists and is not a symlink; move it away")
    link = paths.base / f".current-{os.getpid()}"
    link.unlink(missing_ok=True)
    # Relative, so the project folder can move without breaking the link.
    link.symlink_to(release.relative_to(paths.base))
    link.replace(paths.current)
    return previous


def _deployed_at(release: Path) -> int:
    try:
        return (release / "VERSION").stat().st_mtime_ns
    except OSError:
        return 0


def prune_releases(paths: EnvPaths, keep: int = KEEP_RELEASES) -> list[str]:
    """Remove all but the `keep` most recently deployed releases; never the current one."""
    live = paths.current.resolve() if paths.current.is_symlink() else None
    # Leftovers of an interrupted deploy (we hold the lock, so none of them is in use).
    for leftover in paths.releases.glob(".*"):
        shutil.rmtree(leftover, ignore_errors=True)
    releases = [p for p in paths.releases.iterdir() if p.is_dir() and not p.name.startswith(".")]
    releases.sort(key=lambda p: (_deployed_at(p), p.name), reverse=True)
    removed = []
    for release in releases[keep:]:
        if live is not None and release.resolve() == live:
            continue
        shutil.rmtree(release, ignore_errors=True)
        removed.append(release.name)
    return removed


@contextlib.contextmanager
def deploy_lock(paths: EnvPaths) -> Iterator[None]:
    """Hold the env's deploy lock, or fail at once when another deploy holds it."""
    paths.base.mkdir(parents=True, exist_ok=True)
    with paths.lock_file.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeployError(
                f"another deploy of {paths.env} is running (lock {shown(paths.lock_file)})"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def server_environment(paths: EnvPaths, config: dict[str, str], instance: str) -> dict[str, str]:
    """The server's environment: ours, plus the env's settings, where the project is, and the
    instance id its /health answers with."""
    env_vars = dict(os.environ)
    env_vars.update(config)
    env_vars.update(
        DEMO_ENV=paths.env,
        DEMO_ROOT=str(paths.root),
        DEMO_INSTANCE=instance,
        PYTHONUNBUFFERED="1",
    )
    env_vars.pop("APP_VERSION", None)  # the release's VERSION file is the version
    return env_vars


def deploy(paths: EnvPaths, version: str, url: str, timeout: float) -> None:
    """The whole deploy, printed step by step."""
    host, port = loopback_address(url)
    began = time.monotonic()
    config = parse_env_file(paths.root / "config" / f"{paths.env}.env")
    say(f"deploying demo-service {version} to {paths.env} at {url}")
    with deploy_lock(paths):
        release = build_release(paths, version)
        say(f"  release  {shown(release)} ({', '.join(CODE)} copied, VERSION {version})")
        previous = switch_current(paths, release)
        was = f" (was {previous})" if previous else ""
        say(f"  current  {shown(paths.current)} -> {current_target(paths)}{was}")
        stop_server(paths)
        instance = secrets.token_hex(8)
        process, out_start = start_server(
            paths, host, port, server_environment(paths, config, instance), version
        )
        write_atomically(paths.pid_file, f"{process.pid}\n")
        state = {
            "pid": process.pid,
            "version": version,
            "url": url,
            "instance": instance,
            "started": _now(),
        }
        write_atomically(paths.state_file, json.dumps(state) + "\n")
        say(f"  started  pid {process.pid} on {host}:{port}, output {shown(paths.server_out)}")
        try:
            ready_after = wait_ready(process, url, version, instance, timeout)
        except DeployError as exc:
            # A server that never became ready is stopped: the env is down, not half up.
            if process.poll() is None:
                stop_server(paths)
            else:
                _forget_server(paths)
            tail = _tail(paths.server_out, out_start)
            detail = f"last lines of {shown(paths.server_out)}:\n{tail}" if tail else ""
            raise DeployError(f"{exc}; {paths.env} is not serving", detail) from None
        say(f"  ready    GET /health answered version {version} after {ready_after:.2f}s")
        removed = prune_releases(paths)
        if removed:
            say(f"  pruned   {', '.join(sorted(removed))} (keeping the last {KEEP_RELEASES})")
    say(f"deployed {version} to {paths.env} in {time.monotonic() - began:.2f}s")


def status(paths: EnvPaths, url: str | None) -> bool:
    """Print what runs in the env; whether it is up and healthy."""
    state: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(paths.state_file.read_text())
    url = url or state.get("url")
    pid = read_pid(paths)
    target = current_target(paths) or "nothing"
    running = pid is not None and pid_alive(pid) and is_our_server(pid, paths)
    if not running:
        say(f"{paths.env}: not running (current -> {target})")
        return False
    answer = health(url) if url else None
    said = f", {url}/health: {answer}" if url else ""
    version = state.get("version")
    say(f"{paths.env}: running pid {pid}, version {version} (current -> {target}){said}")
    return url is None or bool(answer and answer.get("status") == "ok")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; argparse itself exits 2 on a usage error."""
    parser = argparse.ArgumentParser(
        prog="deploy.py", description="Deploy a version of the demo service to an environment."
    )
    parser.add_argument("--env", required=True, help="environment name, e.g. staging")
    parser.add_argument("--version", help="the version to deploy, e.g. 1.1.0")
    parser.add_argument("--url", help=f"where to serve (loopback only; default {DEFAULT_URL})")
    parser.add_argument(
        "--timeout", type=float, default=20.0, help="seconds to wait for /health (default 20)"
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--stop", action="store_true", help="stop the env's server and exit")
    action.add_argument("--status", action="store_true", help="show what the env runs and exit")
    args = parser.parse_args(argv)
    if not _ENV_NAME.match(args.env):
        parser.error(f"--env: expected letters, digits, '-' or '_', got {args.env!r}")
    if not (args.stop or args.status):
        if not args.version:
            parser.error("--version is required to deploy")
        if not _VERSION.match(args.version):
            parser.error(f"--version: expected semver such as 1.2.0, got {args.version!r}")
    # NaN and infinity pass `> 0` checks badly or not at all: the wait for /health never ended.
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        parser.error(f"--timeout: expected a number of seconds above zero, got {args.timeout}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    paths = EnvPaths(ROOT, args.env)
    try:
        if args.stop:
            with deploy_lock(paths):
                stop_server(paths)
            say(f"{args.env}: stopped")
            return EXIT_OK
        if args.status:
            return EXIT_OK if status(paths, args.url) else EXIT_FAILED
        deploy(paths, args.version, args.url or DEFAULT_URL, args.timeout)
    except DeployError as exc:
        print(f"deploy.py: error: {exc}", file=sys.stderr, flush=True)
        if exc.detail:
            print(exc.detail, file=sys.stderr, flush=True)
        return exc.exit_code
    except OSError as exc:
        print(f"deploy.py: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
