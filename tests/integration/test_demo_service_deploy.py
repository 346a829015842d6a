"""The demo service's deploy script, run for real: copies, symlinks, a detached uvicorn, loopback.

Each test copies examples/demo-service to tmp_path and runs `deploy.py` as a subprocess with
the Python running the tests, on a free port of 127.0.0.1. Every server is stopped in a
finalizer, and the tests check that no process of the copy is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "examples" / "demo-service"
COPY_IGNORE = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".ruff_cache", "var")
DEPLOY_TIMEOUT_S = 60
# Proxies from the environment must never see loopback requests.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])


def processes_mentioning(text: str) -> list[int]:
    """Live pids whose command line contains the text (Linux /proc; empty elsewhere)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in command and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Status and JSON body of a GET; status 0 when nothing answers."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with OPENER.open(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


def patch(url: str, body: dict[str, Any], headers: dict[str, str]) -> int:
    """Status of a PATCH with a JSON body."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="PATCH",
    )
    with OPENER.open(request, timeout=5) as response:
        return response.status


@dataclass
class DemoService:
    """A copy of the demo service and the servers its deploys started."""

    root: Path
    url: str
    seen_pids: set[int] = field(default_factory=set)

    @property
    def env_dir(self) -> Path:
        return self.root / "var" / "staging"

    def deploy(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run deploy.py for staging; remember the server it leaves running."""
        env = {k: v for k, v in os.environ.items() if k != "APP_VERSION"}
        done = subprocess.run(
            [sys.executable, "deploy.py", "--env", "staging", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=DEPLOY_TIMEOUT_S,
            env=env,
            check=False,
        )
        pid = self.pid()
        if pid is not None:
            self.seen_pids.add(pid)
        return done

    def release(self, version: str) -> subprocess.CompletedProcess[str]:
        """Deploy a version to this copy's URL."""
        return self.deploy("--version", version, "--url", self.url)

    def pid(self) -> int | None:
        """The pid in the pid file, if any."""
        try:
            return int((self.env_dir / "server.pid").read_text())
        except (OSError, ValueError):
            return None


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoService]:
    """A fresh copy of the demo service; every server it started is stopped afterwards."""
    root = tmp_path / "demo-service"
    shutil.copytree(SERVICE, root, ignore=COPY_IGNORE)
    service = DemoService(root=root, url=f"http://127.0.0.1:{free_port()}")
    yield service
    service.deploy("--stop")
    for pid in service.seen_pids | set(processes_mentioning(str(root))):
        if pid_alive(pid):  # --stop failed: do not leave a server behind for the next test
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def assert_ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def test_deploy_switch_roll_back_and_stop(demo: DemoService):
    began = time.monotonic()
    first = demo.release("1.0.0")
    first_took = time.monotonic() - began
    assert_ok(first)
    assert "deployed 1.0.0 to staging" in first.stdout
    # Detached: deploy.py returned although its server keeps running with the output pipe gone.
    assert first_took < 20
    assert get(f"{demo.url}/version")[1]["version"] == "1.0.0"
    assert get(f"{demo.url}/admin/orders/1/audit")[0] == 404
    pid_1 = demo.pid()
    assert pid_1 is not None
    assert pid_alive(pid_1)
    assert os.getsid(pid_1) == pid_1  # leads its own session, away from the caller's signals

    second = demo.release("1.1.0")
    assert_ok(second)
    assert f"stopped  pid {pid_1}" in second.stdout
    assert get(f"{demo.url}/version")[1]["version"] == "1.1.0"
    assert get(f"{demo.url}/admin/orders/1/audit") == (200, {"order_id": 1, "entries": []})
    pid_2 = demo.pid()
    assert pid_2 not in (None, pid_1)
    assert not pid_alive(pid_1)
    assert (demo.env_dir / "current").readlink() == Path("releases/1.1.0")
    assert (demo.env_dir / "releases" / "1.1.0" / "VERSION").read_text() == "1.1.0\n"
    assert (demo.env_dir / "current" / "app" / "main.py").is_file()
    assert patch(f"{demo.url}/api/orders/1", {"status": "paid"}, {"X-Actor": "alice"}) == 200

    status = demo.deploy("--status")
    assert status.returncode == 0
    assert f"running pid {pid_2}" in status.stdout

    rollback = demo.release("1.0.0")
    assert_ok(rollback)
    assert get(f"{demo.url}/version")[1]["version"] == "1.0.0"
    assert get(f"{demo.url}/admin/orders/1/audit")[0] == 404
    assert not pid_alive(pid_2)
    assert (demo.env_dir / "current").readlink() == Path("releases/1.0.0")
    assert get(f"{demo.url}/api/orders/1")[1]["status"] == "paid"  # the data survived

    log = demo.env_dir / "logs" / "app.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert {line["version"] for line in lines} == {"1.0.0", "1.1.0"}
    assert any(line["route"] == "/admin/orders/{order_id}/audit" for line in lines)

    pid_3 = demo.pid()
    assert pid_3 is not None
    stop = demo.deploy("--stop")
    assert_ok(stop)
    assert f"stopped  pid {pid_3}" in stop.stdout
    assert not pid_alive(pid_3)
    assert not (demo.env_dir / "server.pid").exists()
    assert get(f"{demo.url}/health") == (0, None)
    assert processes_mentioning(str(demo.root)) == []
    assert demo.deploy("--status").returncode == 1
    assert_ok(demo.deploy("--stop"))  # stopping a stopped env is fine


def test_settings_reach_the_server_by_environment_never_by_argv(demo: DemoService):
    secret = "demo-staging-3f9c1a7e52b84d0e9a6c"
    assert secret in (demo.root / "config" / "staging.env").read_text()
    # A pid file left by a server that is long gone is cleared, not obeyed.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    demo.env_dir.mkdir(parents=True)
    (demo.env_dir / "server.pid").write_text(f"{gone.pid}\n")

    done = demo.release("1.1.0")
    assert_ok(done)
    assert "stale" in done.stdout
    pid = demo.pid()
    assert pid is not None
    command = Path(f"/proc/{pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert secret.encode() not in command
    assert f"SECRET_KEY={secret}".encode() in environ.split(b"\0")
    assert secret not in done.stdout + done.stderr
    assert secret not in (demo.env_dir / "logs" / "app.jsonl").read_text()


def test_a_url_off_loopback_is_a_usage_error_and_changes_nothing(demo: DemoService):
    done = demo.deploy("--version", "1.0.0", "--url", "http://192.0.2.10:8080")
    assert done.returncode == 2
    assert "loopback" in done.stderr
    assert not (demo.root / "var").exists()


def test_a_server_that_cannot_start_fails_the_deploy_with_its_output(demo: DemoService):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = demo.deploy("--version", "1.0.0", "--url", f"http://127.0.0.1:{port}")
    assert done.returncode == 1
    assert "not serving" in done.stderr
    assert "address already in use" in done.stderr  # the tail of uvicorn.out
    assert not (demo.env_dir / "server.pid").exists()
    assert processes_mentioning(str(demo.root)) == []


def test_a_deploy_is_ready_only_when_its_own_server_answers(demo: DemoService, tmp_path: Path):
    # Another copy of the service already serves the same version on the port: its /health
    # answer looks right, but this deploy's server cannot bind the port and exits.
    other = DemoService(root=tmp_path / "other-copy", url=demo.url)
    shutil.copytree(SERVICE, other.root, ignore=COPY_IGNORE)
    try:
        assert_ok(other.release("1.0.0"))
        other_pid = other.pid()

        done = demo.release("1.0.0")

        assert done.returncode == 1, done.stdout + done.stderr
        assert "deployed 1.0.0" not in done.stdout
        assert "not serving" in done.stderr
        assert "address already in use" in done.stderr  # the tail of uvicorn.out says why
        assert not (demo.env_dir / "server.pid").exists()
        assert processes_mentioning(str(demo.root)) == []
        assert other.pid() == other_pid  # the other copy's server is left alone
        assert get(f"{demo.url}/version")[1]["version"] == "1.0.0"
    finally:
        other.deploy("--stop")
        for pid in processes_mentioning(str(other.root)):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def test_a_deploy_under_a_folder_name_that_is_not_utf8_stops_the_server_it_replaces(
    tmp_path: Path,
):
    # The server was known by its command line decoded as UTF-8: under a folder named in
    # Latin-1 that stopped the deploy with a UnicodeDecodeError, and under a non-UTF-8 locale
    # (PYTHONUTF8=0 LC_ALL=C) a folder named `café` made the running server "stale": it was
    # left holding the port, and every later deploy failed to bind.
    root = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9")) / "demo-service"
    shutil.copytree(SERVICE, root, ignore=COPY_IGNORE)
    demo = DemoService(root=root, url=f"http://127.0.0.1:{free_port()}")
    try:
        assert_ok(demo.release("1.0.0"))
        first = demo.pid()
        second = demo.release("1.1.0")
        assert_ok(second)
        assert f"stopped  pid {first}" in second.stdout
        assert "stale" not in second.stdout
        assert get(f"{demo.url}/version")[1]["version"] == "1.1.0"
    finally:
        demo.deploy("--stop")
        for pid in demo.seen_pids:
            if pid_alive(pid):
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
