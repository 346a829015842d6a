"""One function over many items, spread over the CPUs this process may use, in forked workers.

`check` and `docs` read, validate and render each runbook on its own: work in Python that one
interpreter does on one CPU at a time. `map_ordered` hands contiguous slices of the items to
worker processes forked from this one, so the workers inherit the function and the items
(nothing is pickled on the way in) and send back only results. Results keep the items' order.

A worker never decides how a failure reads: when the function raises for an item, the worker
sends back a marker and this process calls the function on that item again, itself, so the
error (its type, message, hint and exit code) is exactly the one a run in one process gives.

It stays in this process, one item after another, when forking cannot be trusted or would not
pay: fewer than `MIN_ITEMS` items (unless `DRILLBOOK_JOBS` asks for more processes), one CPU,
`DRILLBOOK_JOBS=1`, a platform other than Linux, or another thread running (a fork copies
locks another thread may hold).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: The variable that sets how many processes work (1: this one alone).
JOBS_ENV = "DRILLBOOK_JOBS"
#: Below this many items, forking and sending results back cost more than they save.
MIN_ITEMS = 64
#: Each worker gets at least this many items.
PER_WORKER = 32
#: A slice is sent to a worker at a time; several a worker, so a slow one does not hold up the end.
SLICES_PER_WORKER = 4


class _Failed:
    """What a worker sends back for an item whose function raised."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "FAILED"  # one marker, the same object after pickling


FAILED = _Failed()

# The work of the pool being started, read by the forked workers (inherited, never pickled):
# "fn" and "items" while a pool runs.
_work: dict[str, Any] = {}


def cpus() -> int:
    """How many CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def jobs_for(count: int, environ: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """How many processes `count` items get: `DRILLBOOK_JOBS` if set, else by size and CPUs.

    Raises `UsageError` when `DRILLBOOK_JOBS` is not a whole number of at least 1.
    """
    wanted = environ.get(JOBS_ENV, "").strip()
    if wanted:
        try:
            jobs = int(wanted)
        except ValueError:
            jobs = 0
        if jobs < 1:
            from drillbook.errors import UsageError

            msg = f"{JOBS_ENV} must be a whole number of processes, 1 or more; found {wanted!r}"
            raise UsageError(msg, hint=f"unset {JOBS_ENV}, or set it to 1 to use one process")
        return max(1, min(jobs, count))
    if count < MIN_ITEMS:
        return 1
    return max(1, min(cpus(), count // PER_WORKER))


#: Threads a fork may leave behind: the checks' deadline watcher (`httpsession`) holds no lock
#: a worker ever takes, since a worker never makes a request.
_FORK_SAFE_THREADS = frozenset({"drillbook-check-deadlines"})


def can_fork() -> bool:
    """Whether forking workers is safe here: Linux, and no other thread running (but ones
    known to hold nothing a worker uses)."""
    if sys.platform != "linux":
        return False
    main = threading.main_thread()
    return all(t is main or t.name in _FORK_SAFE_THREADS for t in threading.enumerate())


def map_ordered(fn: Callable[[T], R], items: Sequence[T], *, jobs: int | None = None) -> list[R]:
    """`[fn(item) for item in items]`, spread over worker processes when that pays.

    The first item whose `fn` raises raises here, as in the plain loop, after the workers are
    done; `fn` must not write files or print (a worker's output would interleave).
    """
    jobs = jobs_for(len(items)) if jobs is None else jobs
    if jobs <= 1 or len(items) < 2 or not can_fork():
        return [fn(item) for item in items]
    results = _in_workers(fn, items, jobs)
    pairs = zip(items, results, strict=True)
    return [fn(item) if result is FAILED else result for item, result in pairs]


def _in_workers(fn: Callable[[Any], Any], items: Sequence[Any], jobs: int) -> list[Any]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    step = max(1, -(-len(items) // (jobs * SLICES_PER_WORKER)))
    bounds = [(start, min(start + step, len(items))) for start in range(0, len(items), step)]
    # A fork copies what is buffered for stdout and stderr, and a worker flushes its copy as
    # it ends: flushed now, nothing is printed twice.
    for stream in (sys.stdout, sys.stderr):
        _flush(stream)
    _work.update(fn=fn, items=items)
    # With fork, the pool starts every worker before its first thread (Python 3.11 and on),
    # so each worker is a copy of this single-threaded process.
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_quiet_worker,
        initargs=(os.getpid(),),
    )
    try:
        slices = pool.map(_run_slice, bounds)
        return [result for part in slices for result in part]
    except Exception:  # the pool broke, not the work: it is redone here
        # A worker died (killed, out of memory) or a result could not be sent back: every
        # item is done again here, one after another, which gives any real error as it reads.
        return [FAILED] * len(items)
    finally:
        _work.clear()
        # On Ctrl-C here the slices not yet started are dropped; the running ones are short.
        pool.shutdown(wait=True, cancel_futures=True)


def _flush(stream: Any) -> None:
    """Flush a standard stream before a fork; one closed (None) or failing is left quiet.

    A stream that cannot be written (its reader gone, a full disk) is pointed at /dev/null
    as the console does, so that no worker tries its copy of the buffer again.
    """
    if stream is None:  # closed when the program started (`>&-`)
        return
    try:
        stream.flush()
    except OSError:
        from drillbook.console import mute

        mute(stream)
        with contextlib.suppress(OSError):
            stream.flush()


def _quiet_worker(parent: int) -> None:
    """A worker leaves Ctrl-C to its parent, which stops the pool, and ends when it ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        # PR_SET_PDEATHSIG: a worker whose parent is killed gets SIGTERM, so none is left behind.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the pool's own checks remain
        pass
    if os.getppid() != parent:  # the parent was gone before prctl took effect
        os._exit(1)


def _run_slice(bounds: tuple[int, int]) -> list[Any]:
    """In a worker: the function over items[start:stop], FAILED where it raised."""
    fn, items = _work["fn"], _work["items"]  # set before the fork that made this worker
    out: list[Any] = []
    for index in range(*bounds):
        try:
            out.append(fn(items[index]))
        except Exception:  # the parent calls fn again, for the error as it really reads
            out.append(FAILED)
    return out
