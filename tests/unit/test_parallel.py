"""`parallel.map_ordered`: real forked workers, the same results and errors as one process.

The workers are real processes (their pids are seen), a killed worker's items are redone, a
killed parent takes its workers with it, and nothing buffered is printed twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from _procs import alive, live_children

from drillbook import parallel
from drillbook.errors import InvalidInput, PreconditionFailed, Problem, UsageError

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux")


def square(n: int) -> int:
    return n * n


def test_results_keep_the_order_of_the_items_and_match_one_process() -> None:
    items = list(range(500))

    assert parallel.map_ordered(square, items, jobs=2) == [n * n for n in items]
    assert parallel.map_ordered(square, items, jobs=1) == [n * n for n in items]


def test_the_work_is_done_in_other_processes_when_asked_for_two() -> None:
    def pid_after_a_while(_: int) -> int:
        time.sleep(0.003)  # long enough that one worker cannot take every slice alone
        return os.getpid()

    pids = parallel.map_ordered(pid_after_a_while, list(range(160)), jobs=2)

    assert os.getpid() not in pids
    assert len(set(pids)) == 2, "two workers should share the items"


def test_one_job_or_few_items_stay_in_this_process() -> None:
    assert set(parallel.map_ordered(lambda _: os.getpid(), list(range(200)), jobs=1)) == {
        os.getpid()
    }
    # jobs_for picks one process below MIN_ITEMS, whatever the machine.
    few = list(range(parallel.MIN_ITEMS - 1))
    assert set(parallel.map_ordered(lambda _: os.getpid(), few)) == {os.getpid()}


def test_another_running_thread_keeps_the_work_in_this_process() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert not parallel.can_fork()
        pids = parallel.map_ordered(lambda _: os.getpid(), list(range(200)), jobs=2)
    finally:
        stop.set()
        thread.join()
    assert set(pids) == {os.getpid()}


def test_the_first_failing_item_raises_the_error_one_process_raises() -> None:
    # Neither error survives pickling whole (InvalidInput takes problems, not a message, and
    # a hint is a keyword): the parent raises them itself.
    def load(n: int) -> int:
        if n == 7:
            raise PreconditionFailed(f"item {n} is refused", hint="fix it first")
        if n in (150, 300):
            problem = Problem(f"runbooks/bad-{n}.yaml", 3, 5, "owner", "must not be empty")
            raise InvalidInput([problem])
        return n

    with pytest.raises(PreconditionFailed) as in_workers:
        parallel.map_ordered(load, list(range(400)), jobs=2)
    with pytest.raises(PreconditionFailed) as alone:
        [load(n) for n in range(400)]
    assert str(in_workers.value) == str(alone.value) == "item 7 is refused\n  hint: fix it first"

    with pytest.raises(InvalidInput) as invalid:
        parallel.map_ordered(load, list(range(8, 400)), jobs=2)
    assert [p.file for p in invalid.value.problems] == ["runbooks/bad-150.yaml"]
    assert invalid.value.exit_code == InvalidInput.exit_code


def test_an_item_that_fails_only_in_a_worker_is_redone_here() -> None:
    parent = os.getpid()

    def flaky(n: int) -> tuple[int, bool]:
        if n % 50 == 0 and os.getpid() != parent:
            raise OSError("only in a worker")
        return n, os.getpid() == parent

    got = parallel.map_ordered(flaky, list(range(200)), jobs=2)

    assert [n for n, _ in got] == list(range(200))
    assert all(here for n, here in got if n % 50 == 0)
    assert not any(here for n, here in got if n % 50 != 0)


def test_a_killed_worker_has_its_items_redone_here() -> None:
    parent = os.getpid()

    def fragile(n: int) -> int:
        if n == 150 and os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return n + 1

    assert parallel.map_ordered(fragile, list(range(300)), jobs=2) == list(range(1, 301))
    assert live_children(parent) == []


def test_no_worker_is_left_after_the_work() -> None:
    parallel.map_ordered(square, list(range(300)), jobs=2)

    assert live_children(os.getpid()) == []


def test_output_buffered_before_the_fork_is_printed_once(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from drillbook import parallel
        sys.stdout.write("written before the workers\\n")  # buffered: stdout is a pipe
        print(sum(parallel.map_ordered(abs, list(range(-300, 0)), jobs=2)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )

    assert done.stdout == "written before the workers\n45150\n"


def test_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = textwrap.dedent(
        f"""
        import os, time
        from drillbook import parallel

        def slow(n):
            with open({str(pids)!r}, "a") as f:
                f.write(f"{{os.getpid()}}\\n")
            time.sleep(60)
            return n

        parallel.map_ordered(slow, list(range(4)), jobs=2)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        workers = _wait_for_lines(pids, 2)
    finally:
        parent.kill()
        parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.05)
    assert not [pid for pid in workers if alive(pid)], "workers outlived their parent"


@pytest.mark.parametrize(
    ("environ", "count", "expected"),
    [
        ({"DRILLBOOK_JOBS": "3"}, 1000, 3),
        ({"DRILLBOOK_JOBS": " 1 "}, 1000, 1),
        ({"DRILLBOOK_JOBS": "8"}, 5, 5),  # never more processes than items
        ({}, parallel.MIN_ITEMS - 1, 1),
    ],
)
def test_jobs_for_follows_the_variable_and_the_size(
    environ: dict[str, str], count: int, expected: int
) -> None:
    assert parallel.jobs_for(count, environ) == expected


def test_jobs_for_uses_the_cpus_for_many_items() -> None:
    assert parallel.jobs_for(100_000, {}) == parallel.cpus()
    assert parallel.jobs_for(parallel.PER_WORKER * 2, {}) == min(2, parallel.cpus())


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_jobs_variable_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError) as caught:
        parallel.jobs_for(1000, {"DRILLBOOK_JOBS": value})

    assert "DRILLBOOK_JOBS" in str(caught.value)
    assert repr(value) in str(caught.value)
    assert caught.value.exit_code == UsageError.exit_code


def _wait_for_lines(path: Path, count: int) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().split()
            if len(lines) >= count:
                return [int(line) for line in lines[:count]]
        time.sleep(0.05)
    pytest.fail(f"the workers did not start: {path.read_text() if path.exists() else 'nothing'}")


def test_a_result_that_cannot_be_sent_back_is_made_here() -> None:
    parent = os.getpid()

    def odd(n: int) -> object:
        # A lambda cannot be pickled: made in a worker, it cannot cross back.
        return (lambda: n) if os.getpid() != parent else n

    assert parallel.map_ordered(odd, list(range(100)), jobs=2) == list(range(100))
