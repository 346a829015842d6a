"""What a killed run left running: the process group of its last command, found and stopped.

When drillbook itself dies during a step (SIGKILL, the OOM killer, a crash), the command it was
running lives on: it has a process group of its own. So the journal records the group of every
command it starts (`command_started`), and every command carries `DRILLBOOK_RUN=<run id>` in its
environment. A later run, `resume` or `abandon` finds the processes of that group that still
carry the run's id (a group id can be taken again once its group is gone; the run id in a
process's environment cannot), says so, and `resume` and `abandon` stop them before anything
else happens, so that a deploy is never run twice at once.

A process that left the group on purpose (a service a deploy started in a session of its own)
is not a leftover: it is what the deploy was for. Linux only (/proc); elsewhere none is found.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The environment variable that tells a command which run started it.
RUN_VARIABLE = "DRILLBOOK_RUN"
_CHECK_INTERVAL = 0.02


@dataclass(frozen=True)
class Leftover:
    """A command of a killed run whose processes are still running."""

    step: str
    pgid: int
    pids: tuple[int, ...]

    def describe(self) -> str:
        """`deploy (pids 123, 456)`."""
        pids = ", ".join(str(p) for p in self.pids)
        return f"{self.step} (pid{'s' if len(self.pids) != 1 else ''} {pids})"


def unfinished_commands(events: Iterable[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """(step, process group) of the commands a journal shows started in a step never finished.

    A step may start several (a checks step runs each command check, and retries it).
    """
    started: dict[int, str] = {}
    for event in events:
        kind = event.get("event")
        if kind == "command_started" and isinstance(event.get("pgid"), int):
            started[event["pgid"]] = str(event.get("step"))
        elif kind == "step_finished":
            step = str(event.get("step"))
            started = {pgid: s for pgid, s in started.items() if s != step}
    return [(step, pgid) for pgid, step in started.items()]


def group_pids(pgid: int, run_id: str) -> list[int]:
    """Live processes of group `pgid` whose environment says they belong to run `run_id`."""
    from drillbook.process import group_members

    marker = f"{RUN_VARIABLE}={run_id}".encode()
    pids = []
    for pid in group_members(pgid) or []:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:  # gone meanwhile, or another user's
            continue
        if marker in environ.split(b"\0"):
            pids.append(pid)
    return sorted(pids)


def find(events: Iterable[Mapping[str, Any]], run_id: str) -> list[Leftover]:
    """The commands of run `run_id` that are still running on this machine."""
    found = []
    for step, pgid in unfinished_commands(events):
        pids = group_pids(pgid, run_id)
        if pids:
            found.append(Leftover(step, pgid, tuple(pids)))
    return found


def stop(leftover: Leftover, run_id: str, *, grace: float = 5.0) -> list[int]:
    """Stop a leftover's group: SIGTERM, SIGKILL after `grace` seconds; the pids still alive."""
    for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        if not group_pids(leftover.pgid, run_id):
            return []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(leftover.pgid, signum)
        until = time.monotonic() + wait
        while group_pids(leftover.pgid, run_id) and time.monotonic() < until:
            time.sleep(_CHECK_INTERVAL)
    return group_pids(leftover.pgid, run_id)
