"""Checks shared by the demo's tests: the workspace after the story, and the process table."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from drillbook.demo import processes_of


def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DRILLBOOK_DEBUG"}
    env["NO_COLOR"] = "1"
    return env


def git_tags(root: Path) -> set[str]:
    done = subprocess.run(
        ["git", "-C", str(root), "tag", "--list"], capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def server_pids(root: Path) -> set[int]:
    """Every server pid the deploys of the workspace announced, from the journal."""
    pids: set[int] = set()
    for path in (root / ".drillbook" / "journal").glob("*.jsonl"):
        pids.update(int(p) for p in re.findall(r"started  pid (\d+)", path.read_text()))
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])


def assert_nothing_left(root: Path) -> None:
    pids = server_pids(root)
    assert pids, "the journal names no server the deploys started"
    deadline = time.monotonic() + 5  # a killed server may take a moment to be reaped
    while time.monotonic() < deadline and ([p for p in pids if alive(p)] or processes_of(root)):
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], "a staging server of the demo is still running"
    assert not processes_of(root), "a process of the demo's workspace is still running"


def assert_story_as_told(root: Path, out: str) -> None:
    tags = git_tags(root)
    assert {"v1.0.0", "v1.1.0"} <= tags
    assert "v1.2.0" not in tags
    assert (root / "notes" / "demo-service-1.1.0-rollback.md").is_file()
    assert list((root / "reports").glob("demo-service-1.1.0-rehearsal-*.md"))
    assert (root / "site" / "index.html").is_file()
    assert "rolling back staging from 1.2.0 to 1.1.0" in out
    assert "p95" in out
    assert "exit 4, no tag v1.2.0, staging on 1.1.0" in out
    assert "the story went as told" in out
    assert f"rollback note:    {root / 'notes' / 'demo-service-1.1.0-rollback.md'}" in out
    assert f"docs index:       {root / 'site' / 'index.html'}" in out
    assert_nothing_left(root)
