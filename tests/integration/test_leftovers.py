"""Finding and stopping what a killed run left running: real processes, real /proc."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from drillbook import leftovers
from drillbook.leftovers import RUN_VARIABLE, Leftover

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def spawn(started: list, run_id: str | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != RUN_VARIABLE}
    if run_id is not None:
        env[RUN_VARIABLE] = run_id
    proc = subprocess.Popen(SLEEP, env=env, start_new_session=True)
    started.append(proc)
    return proc


def test_only_processes_of_the_group_that_carry_the_run_id_are_found(started: list) -> None:
    ours = spawn(started, "20261201T000000Z-aaaaaa")
    unmarked = spawn(started, None)  # a group whose id could have been taken again
    other_run = spawn(started, "20261201T000000Z-bbbbbb")

    assert leftovers.group_pids(ours.pid, "20261201T000000Z-aaaaaa") == [ours.pid]
    assert leftovers.group_pids(unmarked.pid, "20261201T000000Z-aaaaaa") == []
    assert leftovers.group_pids(other_run.pid, "20261201T000000Z-aaaaaa") == []


def test_find_reads_the_commands_a_journal_shows_unfinished(started: list) -> None:
    run_id = "20261201T000000Z-cccccc"
    running = spawn(started, run_id)
    events = [
        {"event": "command_started", "step": "lint", "pgid": 1},
        {"event": "step_finished", "step": "lint"},
        {"event": "command_started", "step": "deploy", "pgid": running.pid},
    ]
    assert leftovers.unfinished_commands(events) == [("deploy", running.pid)]
    [found] = leftovers.find(events, run_id)
    assert found == Leftover("deploy", running.pid, (running.pid,))
    assert found.describe() == f"deploy (pid {running.pid})"


def test_stop_terms_then_kills_the_group(started: list) -> None:
    run_id = "20261201T000000Z-dddddd"
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " print('ready', flush=True); time.sleep(60)",
        ],
        env={**os.environ, RUN_VARIABLE: run_id},
        start_new_session=True,
        stdout=subprocess.PIPE,
    )
    started.append(stubborn)
    assert stubborn.stdout is not None
    assert stubborn.stdout.readline() == b"ready\n"
    item = Leftover("deploy", stubborn.pid, (stubborn.pid,))

    assert leftovers.stop(item, run_id, grace=0.2) == []
    assert stubborn.wait(timeout=5) == -9
    stubborn.stdout.close()
    assert leftovers.stop(item, run_id, grace=0.2) == []  # gone: nothing to do


def test_every_command_of_an_unfinished_step_counts() -> None:
    events = [
        {"event": "command_started", "step": "integration", "pgid": 11},
        {"event": "command_started", "step": "integration", "pgid": 12},
        {"event": "step_finished", "step": "lint"},
    ]
    assert leftovers.unfinished_commands(events) == [("integration", 11), ("integration", 12)]
    events.append({"event": "step_finished", "step": "integration"})
    assert leftovers.unfinished_commands(events) == []
