"""One run per project and environment: a lock file under `.drillbook/locks/`.

`acquire_lock` creates `.drillbook/locks/<scope>.lock` with `O_CREAT|O_EXCL`, holding who holds
it: `{run, pid, host, started, argv}` plus the boot id and the process start time, which tell a
live holder from a reused pid. A lock held by a live process (or by any process on another host,
which cannot be checked) raises `LockHeld`. A lock whose holder is gone from this host, or whose
file is unreadable, is taken over, and the `Lock` says so, so the caller can warn.

Creating, taking over and releasing happen under an `flock` on a guard file next to the lock, so
two runs that find the same stale lock cannot both take it over, and nobody reads a lock file
that is still being written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from drillbook.errors import LockHeld, PreconditionFailed, UsageError
from drillbook.files import READ_ONLY_HINT, blocked_folder, mode_kind
from drillbook.process import proc_stat

#: Where lock files live, relative to the project root.
LOCK_DIR = Path(".drillbook") / "locks"
_SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# A lock file is a few hundred bytes; more is not a lock file.
_MAX_LOCK_BYTES = 64 * 1024
_ATTEMPTS = 5


def lock_path(project_root: Path, scope: str) -> Path:
    """The lock file of one scope (an environment name, or a project-wide name)."""
    return project_root / LOCK_DIR / f"{scope}.lock"


def _boot_id() -> str | None:
    """This boot of the Linux kernel, to tell a pid of this boot from one of a previous boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _process_start(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (Linux), to detect a reused pid."""
    fields = proc_stat(pid)
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _is_zombie(pid: int) -> bool:
    """Whether `pid` has died and waits only to be reaped (Linux).

    A killed drillbook whose parent had already gone is reaped by init, which some inits do
    only every few seconds; until then `kill(pid, 0)` still finds it.
    """
    fields = proc_stat(pid)
    return bool(fields) and fields[0] in (b"Z", b"X")


@dataclass
class Lock:
    """A held lock; release it with `release()` or by leaving the `with` block."""

    path: Path
    scope: str
    run_id: str
    record: dict[str, Any]
    #: The previous holder's record when a stale lock was taken over; for an unreadable lock
    #: file, `{"corrupt": reason}`.
    taken_over_from: dict[str, Any] | None = None
    #: A sentence for the person when the lock was taken over.
    warning: str | None = None
    #: Why the previous holder counted as gone ("its process is gone", ...).
    stale_because: str | None = None
    released: bool = field(default=False, init=False)

    def release(self) -> bool:
        """Remove the lock file if it still holds this run; True if it was removed.

        Never raises: it runs as a run ends, whose outcome an error here would hide. A lock
        that cannot be removed (its folder gone or read-only) stays, and the next run finds
        its holder gone and takes it over.
        """
        if self.released:
            return False
        self.released = True
        try:
            with _guard(self.path):
                holder, _ = _read(self.path)
                if holder is None or holder.get("run") != self.run_id:
                    return False
                if holder.get("pid") != self.record["pid"]:
                    return False
                self.path.unlink()
                return True
        except (PreconditionFailed, OSError):
            return False

    def __enter__(self) -> Lock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


@contextlib.contextmanager
def _guard(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on the guard file of `path` for the block.

    The critical sections are a few file operations long. Where flock is not supported the
    block runs unguarded, which leaves only the race between two simultaneous takeovers.
    """
    guard = path.with_name(f".{path.name}.guard")
    try:
        fd = os.open(guard, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise _unwritable(guard, exc) from exc
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the file releases the flock


def _unwritable(path: Path, exc: OSError) -> PreconditionFailed:
    blocked = blocked_folder(path.parent)
    if blocked is not None:
        # Not "File exists", which reads as a lock held.
        found, hint = blocked
        return PreconditionFailed(
            f"cannot create the lock {path}: {found}", hint=f"{hint} (nothing was started)"
        )
    if exc.errno == errno.EROFS:
        return PreconditionFailed(
            f"cannot create the lock {path}: {exc.strerror or exc}",
            hint=f"{READ_ONLY_HINT} (nothing was started)",
        )
    return PreconditionFailed(
        f"cannot create the lock {path}: {exc.strerror or exc}",
        hint=(
            "drillbook needs to write .drillbook/ in the project; check its permissions and "
            "the free space on its disk, then run again (nothing was started)"
        ),
    )


def _read(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The holder's record, or None and why it is unusable; (None, None) if there is no file."""
    try:
        # Not blocking: a named pipe there would hold every run at its start, for ever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        # O_EXCL found a name that open() cannot follow: no run holds that, and retrying
        # would only end in "other runs keep taking it".
        if path.is_symlink():
            return None, "a symbolic link to a missing file"
        return None, None
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    try:
        kind = mode_kind(os.fstat(fd).st_mode)
        if kind is not None:
            return None, f"{kind}, not a regular file"
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(_MAX_LOCK_BYTES + 1)
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    finally:
        os.close(fd)
    if len(data) > _MAX_LOCK_BYTES:
        return None, "too large to be a lock file"
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "not valid JSON" if data.strip() else "empty"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    pid = record.get("pid")
    if (
        not isinstance(record.get("run"), str)
        or not isinstance(pid, int)
        or isinstance(pid, bool)
        or pid <= 0
        or not isinstance(record.get("host"), str)
    ):
        return None, "missing its run, pid or host"
    return record, None


def _holder_state(record: dict[str, Any]) -> str | None:
    """Why the holder is gone ("its process is gone", ...), or None if it may be alive."""
    if record["host"] != this_host():
        return None  # another host: we cannot look, so it counts as alive
    boot = _boot_id()
    if boot is not None and record.get("boot_id") not in (None, boot):
        return "it was started before this machine rebooted"
    pid = record["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "its process is gone"
    except PermissionError:
        pass  # a process of another user has this pid
    if _is_zombie(pid):
        return "its process is gone (it died and waits to be reaped)"
    start = record.get("pid_start")
    if isinstance(start, int):
        actual = _process_start(pid)
        if actual is not None and actual != start:
            return f"its process is gone (pid {pid} now belongs to another process)"
    return None


def _held_message(path: Path, scope: str, record: dict[str, Any]) -> str:
    """Who holds the lock and what to do about it."""
    argv = record.get("argv")
    command = f", command: {' '.join(map(str, argv))}" if isinstance(argv, list) and argv else ""
    where = record["host"]
    started = record.get("started", "at an unknown time")
    other_host = record["host"] != this_host()
    text = (
        f"another run holds the lock for {scope!r}: run {record['run']} "
        f"(pid {record['pid']} on host {where}, started {started}"
        f"{command}). "
    )
    if other_host:
        text += "It runs on another host, so drillbook cannot check whether it is still alive. "
    text += f"Wait for it to finish; if you are sure it is gone, remove {path} and try again."
    return text


def _write_new(path: Path, data: bytes) -> bool:
    """Create the lock file with `data`; False if it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        return False
    try:
        # A write may stop short (a disk with a few bytes left): a torn lock file would read
        # as stale to the next run, which would take it over while this one goes on.
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
        os.fsync(fd)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return True


def _replace(path: Path, data: bytes) -> None:
    """Put `data` in place of the lock file at once (write aside, then rename over)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def live_holder(project_root: Path, scope: str) -> dict[str, Any] | None:
    """Who holds the lock of `scope` now, or None when nobody does who may still be alive.

    Read without the guard, for commands that only look (history, the list of runs to
    resume): they must neither wait for a run nor write beside it. A holder on another host
    counts as alive, since it cannot be checked.
    """
    if not _SCOPE.match(scope):
        return None
    record, _ = _read(lock_path(project_root, scope))
    if record is None or _holder_state(record) is not None:
        return None
    return record


def this_host() -> str:
    """This machine's host name, as the lock and the journal record it (see `argv_text`).

    Python decodes it as the locale says: `café` under LC_ALL=C with PYTHONUTF8=0 could not be
    written as UTF-8, and every run stopped with an internal error as it took its lock.
    """
    return argv_text([socket.gethostname()])[0]


def argv_text(argv: Sequence[str]) -> list[str]:
    """The command line as text JSON can be written in: a byte of an argument that is not
    UTF-8 (Python's surrogate escape, `\\udcff`) as `\\xff`, the rest as typed.

    The lock and the journal record the command line; with one such byte in it (a path on a
    Latin-1 disk given to `-f`) writing either as UTF-8 failed, and the run with it.
    """
    out = []
    for word in map(str, argv):
        try:
            out.append(word.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
        except UnicodeEncodeError:  # a surrogate no decoding made: not from the command line
            out.append(word.encode("utf-8", "backslashreplace").decode("utf-8"))
    return out


def acquire_lock(project_root: Path, scope: str, run_id: str, *, argv: Sequence[str] = ()) -> Lock:
    """Take the lock of `scope` for `run_id`, or raise `LockHeld` naming who holds it.

    A lock left by a process that is gone from this host, or an unreadable lock file, is taken
    over: the returned `Lock` has `taken_over_from` and `warning` set.
    """
    if not _SCOPE.match(scope):
        msg = f"not a lock scope: {scope!r} (letters, digits, '.', '_' or '-')"
        raise UsageError(msg)
    path = lock_path(project_root, scope)
    record: dict[str, Any] = {
        "run": run_id,
        "pid": os.getpid(),
        "host": this_host(),
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "argv": argv_text(argv),
        "boot_id": _boot_id(),
        "pid_start": _process_start(os.getpid()),
    }
    data = json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(path, exc) from exc

    for _ in range(_ATTEMPTS):
        with _guard(path):
            try:
                if _write_new(path, data):
                    return Lock(path, scope, run_id, record)
            except OSError as exc:
                raise _unwritable(path, exc) from exc
            holder, problem = _read(path)
            if holder is None and problem is None:
                continue  # released between our two looks: try to create it again
            if holder is not None:
                gone = _holder_state(holder)
                if gone is None:
                    raise LockHeld(_held_message(path, scope, holder))
                taken_over_from, stale_because = holder, gone
                warning = (
                    f"took over the lock for {scope!r} from run {holder['run']} "
                    f"(pid {holder['pid']}, started {holder.get('started', '?')}): {gone}"
                )
            else:
                taken_over_from, stale_because = {"corrupt": problem}, problem
                warning = f"the lock file {path} was {problem}; treated it as stale and took over"
            try:
                _replace(path, data)
            except OSError as exc:
                raise _unwritable(path, exc) from exc
            # Confirm: without flock (some network file systems) another run may have won.
            mine, _ = _read(path)
            if mine is not None and mine.get("run") == run_id and mine["pid"] == os.getpid():
                return Lock(path, scope, run_id, record, taken_over_from, warning, stale_because)
    msg = f"could not take the lock {path}: other runs keep taking it; try again"
    raise LockHeld(msg)
