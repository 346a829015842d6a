"""The run journal: one JSON object a line in `.drillbook/journal/<run-id>.jsonl`.

The writer adds `ts`, `run` and `seq` to every event, masks every string in it, and writes,
flushes and fsyncs the line before `write` returns, so what a run did survives a crash of the
run or of the machine. If the journal cannot be written, `JournalUnwritable` is raised and every
later write raises too: a run must not change anything it could not record. A journal
deleted, moved or cut short while the run writes it is written again at its path, from the file
the run holds open or from the lines it wrote, before the next synced event (with a
`journal_restored` event saying so).

`write(..., sync=False)` is for the events of steps that change nothing (a gate, a check): the
line is written before `write` returns, so it survives a crash of the run, and it is fsynced
with the next synced event, so before anything changes. An fsync costs from a tenth of a
millisecond to several on a busy disk, more than the rest of a no-op step.

The reader tolerates what a crash leaves behind: a torn last line is ignored, a bad line in the
middle is skipped and counted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from drillbook.errors import JournalUnwritable, PreconditionFailed, UsageError
from drillbook.files import READ_ONLY_HINT, blocked_folder, temp_prefix, umask
from drillbook.secrets import Masker

#: Where journals live, relative to the project root.
JOURNAL_DIR = Path(".drillbook") / "journal"
SUFFIX = ".jsonl"
_RESERVED = frozenset({"ts", "run", "seq", "event"})
# A run id becomes a file name, so it is held to a safe alphabet.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
#: `list_runs` reads at most this much from the end of a journal to find its last events.
TAIL_BYTES = 64 * 1024
#: ... and at most this much from its start to find the first event. The first event holds
#: every change of the release with its title and rollback (a release of a few hundred changes
#: writes more than 64 KiB), from a runbook of at most 1 MiB (`yamlsafe.MAX_BYTES`), escaped.
HEAD_BYTES = 16 * 1024 * 1024


def journal_dir(project_root: Path) -> Path:
    """The folder that holds a project's journals."""
    return project_root / JOURNAL_DIR


def journal_path(project_root: Path, run_id: str) -> Path:
    """The journal file of one run."""
    return journal_dir(project_root) / f"{run_id}{SUFFIX}"


def new_run_id(now: datetime | None = None) -> str:
    """A new run id that sorts by time: `20261123T232914Z-3f9a1c` (UTC, then 6 random hex).

    A naive `now` is taken as UTC.
    """
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{os.urandom(3).hex()}"


def check_run_id(run_id: str) -> str:
    """`run_id` if it is safe as a file name; `UsageError` otherwise."""
    if not _RUN_ID.match(run_id):
        msg = (
            f"not a run id: {run_id!r} (expected letters, digits, '.', '_' or '-', "
            f"like 20261123T232914Z-3f9a1c)"
        )
        raise UsageError(msg)
    return run_id


def format_ts(seconds: float) -> str:
    """A timestamp as the journal writes it: ISO 8601 UTC with milliseconds, `...Z`."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Journal:
    """Appends events to one run's journal file, each one on disk before `write` returns."""

    def __init__(
        self,
        path: Path,
        run_id: str,
        fd: int,
        *,
        masker: Masker,
        sync: bool,
        clock: Callable[[], float],
        seq: int = 0,
    ) -> None:
        self.path = path
        self.run_id = run_id
        self._fd: int | None = fd
        self._masker = masker
        self._sync = sync
        self._clock = clock
        self._seq = seq
        self._broken: str | None = None
        self._unsynced = False
        self._lock = threading.Lock()
        # What this journal wrote, and the size of the file before it: a file cut short under
        # the run (`: > file`, logrotate's copytruncate) is written again from these.
        self._base: int | None = None
        self._mine = bytearray()

    @classmethod
    def open(
        cls,
        project_root: Path,
        run_id: str,
        *,
        masker: Masker | None = None,
        sync: bool = True,
        clock: Callable[[], float] = time.time,
        new: bool = False,
    ) -> Journal:
        """Open (or continue) the journal of `run_id`, creating `.drillbook/journal/` as needed.

        An existing journal is continued: `seq` goes on from its last event, and a torn last
        line (an event a crash cut short, never complete) is cut off, so that every line stays
        one JSON object for whatever reads the file, a log shipper included.

        `new`: the journal of a run that starts now, made by this call or not at all; anything
        already at its path (a run of the same id, a file or a pipe put there) is left as it
        is and `JournalUnwritable` says so: two runs' events in one journal read as one run.
        """
        check_run_id(run_id)
        path = journal_path(project_root, run_id)
        seq = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if new:
                existed = False
                flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
            else:
                existed = path.exists()
                if existed:
                    seq = _last_seq(path)
                flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            # Read and write: a journal deleted while the run writes it is written again from it.
            fd = os.open(path, flags, 0o644)
        except FileExistsError as exc:
            if not (new and path.parent.is_dir()):  # else mkdir's: a file where the folder goes
                raise _unwritable(path, exc) from exc
            msg = (
                f"cannot start the journal {path}: something is already there (expected no "
                f"file: a run with the id {run_id} has a journal, or a file was put in its "
                "place); it was left as it was, and nothing ran"
            )
            raise JournalUnwritable(
                msg,
                hint=(
                    "run the command again: a new run gets a new id; if this comes back, "
                    f"look at what is at {path} (`drillbook history` lists the runs)"
                ),
            ) from None
        except OSError as exc:
            raise _unwritable(path, exc) from exc
        journal = cls(
            path,
            run_id,
            fd,
            masker=masker if masker is not None else Masker(),
            sync=sync,
            clock=clock,
            seq=seq,
        )
        try:
            if sync and not existed:
                # The new file's name must survive a crash too, not only its lines.
                _fsync_dir(path.parent)
            torn = _torn_tail(path)
            if torn is not None:
                if _whole_event(path, torn):
                    # Saved by an editor without its final newline: the event is whole, and
                    # readers show it; only the newline is missing.
                    os.write(journal._fd, b"\n")
                else:
                    _cut(journal._fd, path, torn)
                if sync:
                    os.fsync(journal._fd)
            journal._base = os.fstat(journal._fd).st_size
        except OSError as exc:
            journal.close()
            raise _unwritable(path, exc) from exc
        return journal

    @property
    def seq(self) -> int:
        """The `seq` of the last event written (0 before the first)."""
        return self._seq

    @property
    def broken(self) -> bool:
        """Whether a write failed; every later write raises."""
        return self._broken is not None

    def write(self, event: str, *, sync: bool = True, **fields: Any) -> dict[str, Any]:
        """Write one event and return it as written (masked); raises `JournalUnwritable`.

        With `sync=False` the line is written but fsynced only with the next synced event.
        """
        clash = _RESERVED & fields.keys()
        if clash:
            msg = f"journal fields {sorted(clash)} are set by the journal itself"
            raise ValueError(msg)
        with self._lock:
            if self._broken is not None:
                raise JournalUnwritable(self._broken, hint=_HINT)
            if self._fd is None:
                msg = f"the journal {self.path} is closed"
                raise ValueError(msg)
            if sync:
                # Before each event that precedes a change: a journal deleted meanwhile would
                # take with it every event written to it from then on.
                restored = self._keep_in_place()
                if restored is not None:
                    size, what = restored
                    self._append(
                        "journal_restored",
                        sync=False,
                        fields={
                            "expected": f"the journal at {self.path}",
                            "got": f"it was {what} while the run wrote it; written again from "
                            f"what the run had written ({size} bytes)",
                        },
                    )
            return self._append(event, sync=sync, fields=fields)

    def _append(self, event: str, *, sync: bool, fields: dict[str, Any]) -> dict[str, Any]:
        """Write one event (the lock held, the journal open); the event as written."""
        record: dict[str, Any] = {
            "ts": format_ts(self._clock()),
            "run": self.run_id,
            "seq": self._seq + 1,
            "event": event,
            **fields,
        }
        # Written first as it is; masked value by value only when a secret, a URL's
        # password or a credential header may be in it (see Masker.may_change_json).
        masked = record
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
        if self._masker.may_change_json(line):
            masked = self._masker.mask_obj(record)
            line = json.dumps(
                masked,
                ensure_ascii=False,
                separators=(",", ":"),
                # An object json cannot write (a Path, a datetime) goes in as its text,
                # masked too: mask_obj only sees strings.
                default=lambda obj: self._masker.mask(str(obj)),
            )
        if not line.isascii():
            # JSON allows these inside strings, but many line readers (str.splitlines, some
            # log shippers) end a line at them: escaped, one event stays one line.
            line = line.translate(_LINE_BREAKS)
        try:
            self._write_bytes(line.encode("utf-8") + b"\n", sync=sync)
        except OSError as exc:
            error = _unwritable(self.path, exc)
            self._broken = error.message
            raise error from exc
        self._seq += 1
        return masked

    def _keep_in_place(self) -> tuple[int, str] | None:
        """Write the journal again at its path if it was deleted, moved or cut short while the
        run wrote it; how many bytes were written back and what had happened, or None when it
        is where and as it was.

        Raises `JournalUnwritable` (and the journal stays broken) when another file took its
        place, or when it cannot be written again.
        """
        assert self._fd is not None  # noqa: S101 - callers check
        try:
            mine = os.fstat(self._fd)
            try:
                there: os.stat_result | None = self.path.stat()
            except FileNotFoundError:
                there = None
            if there is None:
                return self._write_again(mine.st_size), "deleted or moved"
        except OSError as exc:
            error = _unwritable(self.path, exc)
            self._broken = error.message
            raise error from exc
        if (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino):
            if self._base is None or mine.st_size >= self._base + len(self._mine):
                return None
            return self._write_back(mine.st_size), f"cut short to {mine.st_size} bytes"
        # Not ours to overwrite: whoever put it there may need it. The run's own lines stay
        # in the file it opened, out of reach of every reader, so nothing more may change.
        self._broken = (
            f"cannot write the journal {self.path}: another file took its place while the run "
            "wrote it (expected the file the run opened)"
        )
        raise JournalUnwritable(
            self._broken,
            hint=f"move the file at {self.path} away; what this run did is recorded nowhere else",
        )

    def _write_back(self, found: int) -> int:
        """Replace a journal cut short to `found` bytes under the run with every line this
        journal wrote, atomically, and write to that from now on; the bytes written back.

        Only a journal this run made can be: of one it continued (a resume closing the run it
        takes over), the lines from before are not held, and the journal stays broken.
        """
        assert self._fd is not None and self._base is not None  # noqa: S101 - callers check
        expected = self._base + len(self._mine)
        if self._base:
            self._broken = (
                f"cannot write the journal {self.path}: it was cut short to {found} bytes "
                f"while the run wrote it, expected at least {expected}"
            )
            raise JournalUnwritable(self._broken, hint=_CUT_HINT)
        folder = self.path.parent
        try:
            prefix = temp_prefix(self.path)
            fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
            try:
                view = memoryview(bytes(self._mine))
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
                os.fchmod(fd, 0o644 & ~umask())  # mkstemp makes it 0600; as os.open made it
                os.replace(tmp, self.path)  # noqa: PTH105
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)  # noqa: PTH108
                raise
            finally:
                os.close(fd)
            _fsync_dir(folder)
            new_fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            error = _unwritable(self.path, exc)
            self._broken = error.message
            raise error from exc
        os.close(self._fd)
        self._fd = new_fd
        self._unsynced = False
        return expected

    def _write_again(self, size: int) -> int:
        """Copy the first `size` bytes of the open (deleted) journal to a new file at its
        path, synced, and write to that from now on; `size`."""
        assert self._fd is not None  # noqa: S101 - callers check
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o644)
        try:
            offset = 0
            while offset < size:
                chunk = os.pread(self._fd, min(1 << 20, size - offset), offset)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                offset += len(chunk)
            os.fsync(fd)
            _fsync_dir(self.path.parent)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise
        os.close(self._fd)
        self._fd = fd
        self._unsynced = False
        return offset

    def _write_bytes(self, data: bytes, *, sync: bool = True) -> None:
        """Write all of `data` and, when syncing, fsync it (and what came before it)."""
        assert self._fd is not None  # noqa: S101 - callers check
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            self._mine += view[:written]
            view = view[written:]
        if not self._sync:
            return
        if sync:
            os.fsync(self._fd)
            self._unsynced = False
        else:
            self._unsynced = True

    def close(self) -> None:
        """Close the file; closing twice is fine."""
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                try:
                    if self._unsynced and self._broken is None:
                        os.fsync(fd)
                except OSError:
                    pass  # what was written stays in the page cache; close cannot undo it
                finally:
                    os.close(fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_CUT_HINT = (
    "look for a copy of it (logrotate's copytruncate leaves one beside it): what this run "
    "did from here on could not be recorded whole, so it stopped"
)

_HINT = (
    "free disk space or fix the folder's permissions, then run the command again (a run that "
    "had started is listed by `drillbook resume`)"
)


def _unwritable(path: Path, exc: OSError) -> JournalUnwritable:
    dangling = blocked_folder(path.parent)
    if dangling is not None:
        # mkdir says only "File exists" of a link to a folder that is gone.
        found, hint = dangling
        return JournalUnwritable(f"cannot write the journal {path}: {found}", hint=hint)
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EPERM:
        # Root passes every permission check; what refuses it is a flag on the file or folder.
        return JournalUnwritable(
            f"cannot write the journal {path}: {reason} (expected a file it may append to)",
            hint=(
                f"`lsattr -d {path.parent} {path}` shows an immutable (i) flag, "
                "which `chattr -i` clears; then run the command again"
            ),
        )
    if exc.errno == errno.EROFS:
        # Neither free space nor permissions: the mount itself refuses every write.
        return JournalUnwritable(
            f"cannot write the journal {path}: {reason} (expected a folder it may write)",
            hint=READ_ONLY_HINT,
        )
    return JournalUnwritable(f"cannot write the journal {path}: {reason}", hint=_HINT)


def _fsync_dir(folder: Path) -> None:
    """Make a folder's entries durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _torn_tail(path: Path) -> int | None:
    """Where a torn last line starts (the size to cut the file to), or None when it ends whole."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return None
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return None
        # Back from the end, block by block, to the newline before the torn line.
        pos = end
        while pos > 0:
            start = max(0, pos - 65536)
            f.seek(start)
            block = f.read(pos - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                return start + cut + 1
            pos = start
        return 0


def _cut(fd: int, path: Path, size: int) -> None:
    """Cut a torn last line off the journal open as `fd`: truncate it to `size`.

    A journal made append-only (`chattr +a`, so that no run can rewrite what was recorded)
    cannot be cut: the torn line is ended instead, and read as one bad line, left out.
    """
    try:
        os.truncate(path, size)
    except PermissionError:
        os.write(fd, b"\n")


def _whole_event(path: Path, start: int) -> bool:
    """Whether the last line of a journal, from `start` to its end (no newline), is one whole
    event, as the reader takes it."""
    with path.open("rb") as f:
        f.seek(start)
        line = f.read(HEAD_BYTES + 1)
    if len(line) > HEAD_BYTES:
        return False  # longer than any event the writer writes
    events, _, _ = _parse_lines(line)
    return bool(events)


def _last_seq(path: Path) -> int:
    """The highest `seq` among the last events of an existing journal."""
    events, _, _ = _parse_lines(_read_tail(path, TAIL_BYTES))
    return max((e["seq"] for e in events if isinstance(e.get("seq"), int)), default=0)


@dataclass(frozen=True)
class JournalRead:
    """A journal as read back: its events, and what had to be left out."""

    events: list[dict[str, Any]]
    torn: bool = False  # the last line was not valid JSON (a write cut short) and was ignored
    skipped: int = 0  # bad lines before the last one, left out


def _parse_lines(data: bytes) -> tuple[list[dict[str, Any]], bool, int]:
    """Events from JSON-lines bytes, whether the last line was torn, and how many were bad."""
    lines = [line for line in data.split(b"\n") if line.strip()]
    events: list[dict[str, Any]] = []
    torn = False
    skipped = 0
    for index, raw in enumerate(lines):
        try:
            # The writer writes UTF-8; a byte that is not (a hand edit, a bit flipped) costs
            # only the character it stands for, not the whole event. "-sig": an editor may
            # have put a byte order mark before the first line.
            event = json.loads(raw.decode("utf-8-sig", errors="replace"))
        except ValueError:
            event = None
        if isinstance(event, dict):
            events.append(event)
        elif index == len(lines) - 1:
            torn = True
        else:
            skipped += 1
    return events, torn, skipped


def read_journal(path: Path) -> JournalRead:
    """Every event of a journal file; a torn last line is ignored, bad lines are skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        msg = f"no journal at {path}"
        raise UsageError(msg) from exc
    except OSError as exc:
        msg = f"cannot read the journal {path}: {exc.strerror or exc}"
        raise UsageError(msg) from exc
    events, torn, skipped = _parse_lines(data)
    return JournalRead(events, torn, skipped)


def run_state(events: list[dict[str, Any]]) -> str:
    """How a run's journal ends: closed (resumed or abandoned), finished, interrupted (finished
    by a signal, to be resumed or abandoned) or open (never finished: killed, or still going)."""
    if any(e.get("event") == "run_closed" for e in events):
        return "closed"
    finished = next((e for e in reversed(events) if e.get("event") == "run_finished"), None)
    if finished is None:
        return "open"
    return "interrupted" if finished.get("outcome") == "interrupted" else "finished"


def live_events(project_root: Path, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run's events without the `run_closed` of a resume that never started.

    A resume closes the run it continues (`run_closed`, how `resumed`, by R) once its own
    journal exists, and writes its `run_started` next: killed in between, R's journal holds no
    event, and nothing of R ever ran. Such a closure closes nothing: the run is as open as
    before, to be resumed (or abandoned) again, and no run took it over.
    """
    unstarted = unstarted_resumers(project_root, events)
    if not unstarted:
        return events
    return [e for e in events if not (e.get("event") == "run_closed" and e.get("by") in unstarted)]


def unstarted_resumers(project_root: Path, events: list[dict[str, Any]]) -> set[str]:
    """The runs said to have resumed this one whose journal does not start with its
    `run_started` (see `live_events`): empty, torn, or closed by `abandon` since. A resumer
    whose journal is gone is not one of them: nothing says it never ran."""
    unstarted = set()
    for event in events:
        by = event.get("by")
        if event.get("event") != "run_closed" or event.get("how") != "resumed":
            continue
        if not isinstance(by, str) or not _RUN_ID.match(by):
            continue
        try:
            first, _ = _first_and_last(journal_path(project_root, by))
        except OSError:
            continue
        if first is None or first.get("event") != "run_started":
            unstarted.add(by)
    return unstarted


def remove_unstarted_resumers(project_root: Path, run_id: str) -> None:
    """Delete the journals of the resumes of `run_id` that never started (see `live_events`):
    they hold no event, and listed, each would be a run left open forever. Called by what
    closes `run_id` in earnest, under its environment's lock."""
    events = read_journal(journal_path(project_root, run_id)).events
    for run in unstarted_resumers(project_root, events):
        with contextlib.suppress(OSError):
            journal_path(project_root, run).unlink()


def how_it_ended(events: list[dict[str, Any]]) -> str:
    """A closed or finished run's end in words: `was abandoned at TS`, `was resumed by run R
    at TS`, `finished (failed) at TS`."""
    closed = next((e for e in reversed(events) if e.get("event") == "run_closed"), None)
    if closed is not None:
        how = closed.get("how") if isinstance(closed.get("how"), str) else "closed"
        by = f" by run {closed['by']}" if isinstance(closed.get("by"), str) else ""
        return f"was {how}{by} at {closed.get('ts', 'an unknown time')}"
    finished = next((e for e in reversed(events) if e.get("event") == "run_finished"), {})
    return f"finished ({finished.get('outcome')}) at {finished.get('ts', 'an unknown time')}"


def failure_of(
    events: list[dict[str, Any]],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A run's first `rollback_started` event and its first failed `step_finished` or failed
    `check_finished`, each or None: a release with either had failed, and is never resumed
    step by step.

    A check that failed counts even when its step never finished (the run was stopped while
    its other checks ran): a resume would run the checks again, and one that passes on the
    second try would get a release tagged whose check failed.
    """
    rolling = next((e for e in events if e.get("event") == "rollback_started"), None)
    failed = next(
        (
            e
            for e in events
            if (e.get("event") == "step_finished" and e.get("outcome") in ("failed", "fail"))
            or (e.get("event") == "check_finished" and e.get("outcome") == "fail")
        ),
        None,
    )
    return rolling, failed


@dataclass(frozen=True)
class RunInfo:
    """What `list_runs` knows of one run without reading its whole journal."""

    run_id: str
    path: Path
    first: dict[str, Any] | None  # the first event's summary (runindex.SUMMARY_KEYS)
    last: dict[str, Any] | None  # the last complete event's summary
    finished: bool  # a `run_finished` event is among the last events


def _read_tail(path: Path, limit: int) -> bytes:
    """The last whole lines within the last `limit` bytes of a file."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        start = max(0, size - limit)
        f.seek(start)
        data = f.read(limit)
    if start > 0:
        # The first line read is probably cut; start at the next whole one.
        cut = data.find(b"\n")
        data = data[cut + 1 :] if cut >= 0 else b""
    return data


def list_runs(project_root: Path) -> list[RunInfo]:
    """Every run with a journal in the project, newest first, each with a summary.

    A journal's summary is read from its first and last few lines, once: it is kept in the
    run index (`runindex`) and read again only when the journal changed. `first` and `last`
    hold the fields in `runindex.SUMMARY_KEYS`; read the journal for the rest. `finished` is
    judged from the last events: `run_finished` is written at the end of a run, followed at
    most by a `run_closed`.
    """
    from drillbook.runindex import RunIndex, stamp, summarize

    folder = journal_dir(project_root)
    try:
        entries = [e for e in os.scandir(folder) if e.name.endswith(SUFFIX) and e.is_file()]
    except FileNotFoundError:
        dangling = blocked_folder(folder)
        if dangling is None:
            return []
        # Not "no runs": the journals, if any, are where the link pointed.
        found, hint = dangling
        raise PreconditionFailed(
            f"cannot list the journals in {folder}: {found}", hint=hint
        ) from None
    except OSError as exc:
        # The world says no (exit 3), as for a journal that cannot be written: the project's
        # .drillbook/ is not a folder drillbook can read.
        msg = f"cannot list the journals in {folder}: {exc.strerror or exc}"
        raise PreconditionFailed(
            msg,
            hint=(
                f"drillbook keeps its journals and locks in {folder.parent}, which must be a "
                "folder it can read and write; move away what is there, then run again "
                "(nothing was started)"
            ),
        ) from exc
    index = RunIndex.load(project_root)
    runs = []
    for entry in entries:
        path = Path(entry.path)
        run_id = entry.name[: -len(SUFFIX)]
        try:
            current = stamp(entry.stat())
            summary = index.get(entry.name, current)
            if summary is None:
                first, tail = _first_and_last(path)
                finished = any(event.get("event") == "run_finished" for event in tail)
                summary = (summarize(first), summarize(tail[-1] if tail else first), finished)
                index.put(entry.name, current, summary)
        except OSError:
            runs.append(RunInfo(run_id, path, None, None, finished=False))
            continue
        runs.append(RunInfo(run_id, path, *summary))
    index.save(entry.name for entry in entries)
    names = {info.run_id for info in runs}
    runs = [info for info in runs if _copied_from(info) not in names]
    # Run ids start with their UTC time to the second, and a random part: two runs of the same
    # second (a release and its resume) sort by the millisecond `ts` of their first event.
    runs.sort(key=_start_key, reverse=True)
    return runs


def _copied_from(info: RunInfo) -> str | None:
    """The run whose journal `info`'s is a copy of, or None.

    A journal copied beside its original (`cp R.jsonl R-copy.jsonl`, a backup) holds the
    events of run R, not of a second run: listed, it would stay unfinished after R is
    closed, and every run that changes R's environment would refuse, sending the person to
    close R again. The original's journal is the run's.
    """
    said = info.first.get("run") if info.first else None
    return said if isinstance(said, str) and said != info.run_id else None


#: How many lines from a journal's end `list_runs` parses.
_LAST_LINES = 4


def _first_and_last(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A journal's first event and its last few valid events (oldest first), from one read."""
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= TAIL_BYTES:
            data = f.read()
            start = len(data) - len(data.lstrip())  # the writer writes none, an editor may
            end = data.find(b"\n", start)
            head = data[start : end + 1] if end >= 0 else data[start:]
        else:
            head = f.readline(HEAD_BYTES)
            while head and not head.strip() and f.tell() < size:
                head = f.readline(HEAD_BYTES)
            f.seek(size - TAIL_BYTES)
            data = f.read()
            data = data[data.find(b"\n") + 1 :]  # the first line read is probably cut
    first = next(iter(_parse_lines(head)[0]), None)
    lines = [line for line in data.split(b"\n")[-(_LAST_LINES + 1) :] if line.strip()]
    tail, _, _ = _parse_lines(b"\n".join(lines[-_LAST_LINES:]))
    return first, tail


def _start_key(info: RunInfo) -> tuple[str, str]:
    ts = info.first.get("ts") if info.first else None
    if isinstance(ts, str) and len(ts) >= 19 and not ts.endswith("Z"):
        # A hand edit or a log tool's zone (+02:00), or none: the moment in UTC, as history
        # orders runs, so that what runs now by the journal is the newest run history shows.
        try:
            moment = datetime.fromisoformat(ts)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            ts = format_ts(moment.timestamp())
        except (ValueError, OverflowError, OSError):
            ts = None
    if isinstance(ts, str) and len(ts) >= 19:
        # "2026-11-23T23:29:14.123Z" -> "20261123T232914.123Z"
        return ts[:19].replace("-", "").replace(":", "") + ts[19:], info.run_id
    # No first event to read: the second in the run id, "20261123T232914Z" -> "...914.000Z".
    return info.run_id.split("Z", 1)[0] + ".000Z", info.run_id
