"""Readiness of a just-started uvicorn: the demo's deploy.py polling against a bare 20 ms loop.

    python bench/bench_ready.py [--quick]

The demo service is copied into a temporary folder and one release of it is built there. Each
run starts its uvicorn with deploy.py's own `start_server` (the same command, environment and
settings as a deploy), then waits until `GET /health` answers the version:

- subject: deploy.py's `wait_ready` (what a deploy waits with);
- baseline: a bare loop of `http.client` requests 20 ms apart.

Both are timed from the start of the process to the answer; the server is stopped (untimed)
after each run. A ratio near 1 says the deploy adds nothing to the server's own start-up; a
fixed sleep anywhere would show as a constant added to every run.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import harness
from harness import Goal, Result, Scale, Settings

VERSION = "1.0.0"
#: The instance id the started servers answer /health with (deploy.py checks it).
INSTANCE = "bench-ready"
POLL_S = 0.020


def load_deploy(workspace: Path) -> ModuleType:
    """The workspace's deploy.py as a module (its ROOT is the workspace)."""
    spec = importlib.util.spec_from_file_location("bench_demo_deploy", workspace / "deploy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bare_wait(process: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> None:
    """Poll /health every 20 ms until it answers the version."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"uvicorn exited with {process.returncode}"
            raise harness.BenchError(msg)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
        try:
            connection.request("GET", "/health")
            body = json.loads(connection.getresponse().read())
            if body.get("status") == "ok" and body.get("version") == VERSION:
                return
        except (OSError, ValueError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        time.sleep(POLL_S)
    msg = "uvicorn did not answer in time"
    raise harness.BenchError(msg)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def figures(settings: Settings) -> tuple[list[Result], list[Scale]]:
    """The readiness figure."""
    if importlib.util.find_spec("uvicorn") is None:
        print("readiness: uvicorn is not installed (pip install -e '.[dev]'); skipped")
        return [], []
    from drillbook.resources import resource

    print("readiness of a just-started uvicorn", flush=True)
    with tempfile.TemporaryDirectory(prefix="drillbook-bench-ready-") as tmp:
        workspace = Path(tmp) / "demo"
        shutil.copytree(
            resource("demo-service"),
            workspace,
            ignore=shutil.ignore_patterns("__pycache__", "var", ".pytest_cache"),
        )
        deploy = load_deploy(workspace)
        paths = deploy.EnvPaths(workspace, "staging")
        deploy.switch_current(paths, deploy.build_release(paths, VERSION))
        config = deploy.parse_env_file(workspace / "config" / "staging.env")
        # One id for every start: each starts on a port of its own, so no other server answers.
        env_vars = deploy.server_environment(paths, config, INSTANCE)

        def side(wait: Any) -> harness.Runner:
            def run() -> float:
                port = free_port()
                start = time.perf_counter()
                process, _ = deploy.start_server(paths, "127.0.0.1", port, env_vars, VERSION)
                try:
                    wait(process, port)
                    return time.perf_counter() - start
                finally:
                    stop(process)

            return run

        samples = harness.measure(
            {
                "deploy.py wait_ready": side(
                    lambda p, port: deploy.wait_ready(
                        p, f"http://127.0.0.1:{port}", VERSION, INSTANCE, 20
                    )
                ),
                "bare 20 ms polling loop": side(bare_wait),
            },
            runs=settings.runs(11, 2),
        )
    result = Result(
        "readiness of a just-started uvicorn",
        samples["deploy.py wait_ready"],
        samples["bare 20 ms polling loop"],
        goal=Goal("<=", 1.1),
        note=f"deploy.py polls every {deploy.POLL_INTERVAL_S * 1000:.0f} ms, no fixed sleeps",
    )
    harness.report(result)
    return [result], []


if __name__ == "__main__":
    sys.exit(harness.standalone("ready", figures))
