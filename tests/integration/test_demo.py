"""`drillbook demo` from this checkout, for real: a git workspace, uvicorn on loopback, the story.

Each test runs the demo as a user does, in a subprocess, and afterwards looks at the workspace
(tags, notes, reports, docs) and at the process table: no server of the workspace may be left.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _demo_checks import assert_nothing_left, assert_story_as_told, demo_env, git_tags

pytestmark = pytest.mark.slow

DEMO_TIMEOUT_S = 240


def test_demo_tells_the_whole_story_and_stops_its_server(tmp_path: Path) -> None:
    root = tmp_path / "tour"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "drillbook", "demo", "--keep", str(root)],
        cwd=elsewhere,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    took = time.monotonic() - began

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert_story_as_told(root, done.stdout)
    assert not list(elsewhere.iterdir())  # the demo writes only in its workspace
    assert took < 120, f"the demo took {took:.0f}s"
    assert_the_workspace_goes_on_as_printed(root, done.stdout)


def assert_the_workspace_goes_on_as_printed(root: Path, out: str) -> None:
    """The lines the demo prints for going on in its workspace work when pasted into a shell
    whose PATH holds neither drillbook nor a Python with the demo's packages."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("cd "))
    go_on, then = lines[start].strip(), lines[start + 1].strip()
    assert then == "drillbook plan; drillbook history; git show v1.1.0", then
    script = f"{go_on} && drillbook plan && python -c 'import fastapi, uvicorn' && git show v1.1.0"
    done = subprocess.run(
        ["/bin/sh", "-c", script],
        cwd=root.parent,
        env={**demo_env(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert done.stdout.startswith("plan: release 1.2.0 of demo-service on staging\n")
    assert "\ntag v1.1.0\n" in done.stdout


# SIGHUP: the terminal the demo runs in was closed (a tab, an SSH connection that dropped).
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_an_interrupted_demo_stops_its_server_and_exits_128_plus_the_signal(
    tmp_path: Path, signum: signal.Signals
) -> None:
    root = tmp_path / "tour"
    proc = subprocess.Popen(
        [sys.executable, "-m", "drillbook", "demo", "--keep", str(root)],
        cwd=tmp_path,
        env=demo_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            # Staging runs 1.1.0 and release 1.2.0 is on its way: the worst moment to stop.
            if "[5/8] deploy 1.2.0 to staging" in line:
                proc.send_signal(signum)
                break
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen) + rest

    assert proc.returncode == 128 + signum, out[-3000:]
    assert "interrupted" in out
    assert "the demo was interrupted" in out
    assert "v1.2.0" not in git_tags(root)
    # The interrupted release journals the signal the demo got, not one the demo chose.
    newest = max((root / ".drillbook" / "journal").glob("*.jsonl"))
    finished = json.loads(newest.read_text().splitlines()[-1])
    assert (finished["event"], finished["outcome"]) == ("run_finished", "interrupted")
    assert finished["exit"] == 128 + signum
    assert f"interrupted by {signum.name}" in out
    assert_nothing_left(root)


def test_a_port_taken_after_the_demo_chose_it_is_named_with_what_to_do(tmp_path: Path) -> None:
    root = tmp_path / "tour"
    proc = subprocess.Popen(
        [sys.executable, "-m", "drillbook", "demo", "--keep", str(root)],
        cwd=tmp_path,
        env=demo_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    holder = socket.socket()
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            found = re.search(r"staging:\s+http://127\.0\.0\.1:(\d+)", line)
            if found:  # another program takes the port before the first deploy
                port = int(found.group(1))
                holder.bind(("127.0.0.1", port))
                holder.listen()
                break
        rest, _ = proc.communicate(timeout=DEMO_TIMEOUT_S)
    finally:
        holder.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen) + rest

    assert proc.returncode == 1, out[-3000:]
    assert "NOT as told" in out
    assert f"staging's port {port} is held by another program" in out
    assert "run `drillbook demo` again with a new --keep folder" in out
    assert_nothing_left(root)
