"""Run one command the way a release tool must.

`run_command` starts the command in a process group of its own (a new session), with stdin from
/dev/null and stdout and stderr merged into one pipe. Each line of output is masked and handed to
`on_line` as it arrives, and the last lines are kept for the journal. A command that outlives its
timeout, or that is interrupted through a `StopToken`, has its whole group stopped: SIGTERM,
then SIGKILL after a grace period, grandchildren included. A command is over when it has exited
and its output is closed: a background process that keeps the output open after the command
exited counts as the command still running, so it is stopped with the group at the timeout (it
would die of a broken pipe at its next write anyway). A command that cannot start is a result
(`not_found`, `error`), never an exception.

How it waits: the calling thread blocks in `poll()` on the output pipe, on a pidfd of the child
(readable once it exited) and on a wake-up pipe, with the next deadline as the poll timeout;
`StopToken.stop` writes to the wake-up pipe. Where there is no pidfd, a small thread blocks in
`waitpid()` and writes to the wake-up pipe when the child exits. Nothing polls on a timer in
the normal path. The one exception is after a stop: the death of a grandchild cannot be waited
for (it is not our child), so the group is checked every few milliseconds until it is gone or the
grace period ends.

`handle_signals` connects SIGINT, SIGTERM and SIGHUP to a `StopToken`: the first signal stops the
running commands, a second one kills them and exits at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal

from drillbook.secrets import Masker

Outcome = Literal["ok", "failed", "timeout", "not_found", "interrupted", "error"]

#: After its group was stopped and the command exited, how long a process outside the group
#: (one that left it with setsid) may keep the output pipe open before we stop reading it.
OUTPUT_GRACE = 1.0

_READ_SIZE = 65536
#: A line longer than this many bytes is passed on in pieces, so memory stays bounded. A piece
#: ends between characters and never inside a secret (see `Masker.cut_point`), so it may be a
#: little shorter; only a secret or credential longer than this could make it longer.
MAX_LINE_BYTES = 65536
#: How often the group is checked while waiting for stopped grandchildren to go.
_GROUP_CHECK_INTERVAL = 0.01
#: After SIGKILL, how long we wait to see the group gone before returning anyway.
_KILL_CONFIRM = 2.0
_MAX_POLL_MS = 3_600_000
#: At most this much already-buffered output is read when we stop reading early.
_DRAIN_LIMIT = 1 << 20

_DEFAULT_MASKER = Masker()

# What /bin/sh means by these exit codes.
_SHELL_CODES = {
    126: "the shell could not execute the command",
    127: "the shell did not find the command",
}


@dataclass(frozen=True)
class CommandResult:
    """What happened to one command."""

    argv: tuple[str, ...]  # masked for display
    outcome: Outcome
    exit: int | None  # return code; negative = killed by that signal; None if it never started
    duration_ms: int
    output_tail: str  # the last lines of combined stdout and stderr, masked
    detail: str  # one line for a person: "exited 2", "timed out after 5s; ..."

    @property
    def ok(self) -> bool:
        """Whether the command ran and exited 0."""
        return self.outcome == "ok"


class StopToken:
    """Stops the commands started with it; shared between the signal layer and `run_command`.

    `stop(signum)` records the signal (the first one wins) and asks every command currently
    running with this token to stop its process group: SIGTERM, then SIGKILL after that command's
    grace period. The stopping is done by each command's own waiting thread; `stop` itself only
    writes a byte to a non-blocking pipe, so it is safe and quick inside a signal handler.
    A command started after `stop` is not started at all.

    With `forward`, the group gets the signal that was received instead of SIGTERM: for a
    command that is itself a drillbook run, which then records the interruption as what it was
    (Ctrl-C: SIGINT, exit 130), not as a SIGTERM it never had.
    """

    def __init__(self, *, forward: bool = False) -> None:
        self.forward = forward
        self._signum: int | None = None
        self._stopped = False
        self._runs: dict[int, _Run] = {}
        self._hooks: dict[int, Callable[[], None]] = {}

    @property
    def signum(self) -> int | None:
        """The signal that stopped the run, or None."""
        return self._signum

    @property
    def stopped(self) -> bool:
        """Whether `stop` (or `kill`) was called."""
        return self._stopped

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Record `signum` and stop every running command's process group (TERM, then KILL)."""
        if self._signum is None:
            self._signum = signum
        self._stopped = True
        # dict.copy() is one C call, so a signal handler never sees the dict mid-change.
        for run in self._runs.copy().values():
            run.wake()
        self._run_hooks()

    def kill(self) -> None:
        """SIGKILL every running command's process group now, without a grace period."""
        self._stopped = True
        for run in self._runs.copy().values():
            run.kill_now()
        self._run_hooks()

    def on_stop(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call `hook` when the run is stopped, at once if it already is; returns its undo.

        A second signal (`kill`) calls the hooks again. A hook runs inside the signal handler,
        in the main thread, possibly while that thread is in the middle of something else: it
        must be quick, take no lock and not raise (an exception from it is dropped).
        """
        key = id(hook)
        self._hooks[key] = hook
        if self._stopped:
            with contextlib.suppress(Exception):
                hook()
        return lambda: self._hooks.pop(key, None)

    def _run_hooks(self) -> None:
        for hook in self._hooks.copy().values():
            with contextlib.suppress(Exception):
                hook()

    def _register(self, run: _Run) -> None:
        self._runs[id(run)] = run

    def _unregister(self, run: _Run) -> None:
        self._runs.pop(id(run), None)


@contextlib.contextmanager
def handle_signals(
    token: StopToken,
    signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP),
    *,
    last_words: Callable[[str], str] | None = None,
) -> Iterator[StopToken]:
    """Route SIGINT, SIGTERM and SIGHUP to `token` while the block runs; restore the old
    handlers after. SIGHUP is a closed terminal (an SSH connection that dropped): left to its
    default it ended drillbook on the spot, with the command it ran left running in a session
    of its own and the journal not saying so.

    The first signal calls `token.stop(signum)`: running commands are stopped and the caller
    sees outcome "interrupted". A second signal kills the command groups at once and ends the
    process with `os._exit(128 + signum)`, for the person who presses Ctrl-C twice; before it,
    `last_words(signal name)` is written to stderr as one line, for nothing else is said.
    Must be entered in the main thread (Python delivers signals there only).
    """
    received = 0

    def _handler(signum: int, _frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        if received == 1:
            token.stop(signum)
            return
        token.kill()
        if last_words is not None:
            # os.write, not print: the main thread may be inside a write to sys.stderr.
            with contextlib.suppress(Exception):
                os.write(2, (last_words(_signal_name(signum)).rstrip("\n") + "\n").encode())
        os._exit(128 + signum)

    previous: dict[int, signal.Handlers | int | Callable[..., object] | None] = {}
    try:
        for signum in signals:
            previous[signum] = signal.signal(signum, _handler)
        yield token
    finally:
        for signum, handler in previous.items():
            # None means the old handler was not installed from Python; the default is closest.
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _format_seconds(seconds: float) -> str:
    """`5s`, `0.5s`, `90s`: how a duration reads in a detail line."""
    return f"{seconds:g}s"


def _signal_name(signum: int) -> str:
    """`SIGTERM` for 15; the number when the signal has no name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def proc_stat(pid: int | str) -> list[bytes]:
    """The fields of /proc/PID/stat after the command name (state first); [] when unreadable.

    The command name is cut off at its last ')': it may hold spaces and parentheses.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return []
    return stat[stat.rfind(b")") + 2 :].split()


def group_members(pgid: int) -> list[int] | None:
    """The live (not zombie) processes of a process group, from /proc; None without /proc."""
    try:
        names = [entry.name for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    except OSError:
        return None
    members = []
    for name in names:
        fields = proc_stat(name)
        if len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] not in (b"Z", b"X"):
            members.append(int(name))
    return members


def _live_members(pgid: int) -> bool:
    """Whether the process group still has a process that is not a zombie.

    `killpg(pgid, 0)` also counts zombies, and an orphaned zombie lasts until init reaps it,
    which some init processes do only every few seconds. A dead process is dead for our purpose,
    so on Linux the group's members are read from /proc.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    members = group_members(pgid)
    return True if members is None else bool(members)  # no /proc: trust killpg


def _not_started(argv0: str, error: OSError, cwd: Path) -> tuple[Outcome, str]:
    """The outcome and detail for a command that could not start."""
    if isinstance(error, FileNotFoundError):
        if error.filename is not None and str(error.filename) == str(cwd):
            return "error", f"working directory does not exist: {cwd}"
        if "/" in argv0:
            return "not_found", f"command not found: {argv0!r} (no such file)"
        return "not_found", f"command not found: {argv0!r} (is it installed and on PATH?)"
    if isinstance(error, PermissionError):
        return "error", f"cannot run {argv0!r}: permission denied (is it executable?)"
    if isinstance(error, NotADirectoryError):
        return "error", f"cannot run {argv0!r}: a part of its path or of {cwd} is not a directory"
    if error.errno == errno.ENOEXEC:
        return "error", f"cannot run {argv0!r}: not an executable format (a script needs a #! line)"
    return "error", f"cannot run {argv0!r}: {error.strerror or error}"


class _Run:
    """The state of one running command; driven by `run_command` in the calling thread."""

    def __init__(
        self,
        *,
        timeout: float,
        grace: float,
        on_line: Callable[[str], None] | None,
        tail_lines: int,
        on_text: Callable[[str], None] | None = None,
        masker: Masker,
        token: StopToken | None,
    ) -> None:
        self.timeout = timeout
        self.grace = grace
        self.on_line = on_line
        self.on_text = on_text
        self.masker = masker
        self.token = token
        self.tail: deque[str] = deque(maxlen=max(tail_lines, 0))
        self.pgid: int | None = None
        self.returncode: int | None = None
        self.child_done = False
        self.child_done_at = 0.0
        self.eof = False
        self.abandoned_output = False
        self.exited_before_stop = False
        self.stop_reason: Literal["timeout", "interrupted"] | None = None
        self.kill_at = 0.0
        self.killed_at: float | None = None
        self.kill_sent = False
        self.stop_sent = "TERM"  # the signal a stop sent first, as `_detail` names it
        self.kill_now_sent = False
        self.shell = False
        self.callback_error: BaseException | None = None
        self._buffer = b""
        # Reentrant: a signal handler runs in the main thread and may call wake() while that
        # thread is inside close().
        self._wake_lock = threading.RLock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._closed = False

    # --- called from other threads and from signal handlers -------------------------------

    def wake(self) -> None:
        """Make the waiting thread look at its state again (non-blocking, signal-safe)."""
        with self._wake_lock:
            if self._closed:
                return
            # A full pipe already means "look again".
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_w, b"!")

    def kill_now(self) -> None:
        """SIGKILL the group at once (a second signal); the result says "interrupted"."""
        if self.pgid is None:
            return
        # Plain attribute writes: this runs inside a signal handler. A command that already
        # exited on its own keeps its own outcome.
        if self.stop_reason is None and not self.child_done:
            self.stop_reason = "interrupted"
        self.kill_now_sent = True
        self.kill_sent = True
        self.killed_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)

    def close(self) -> None:
        """Release the wake-up pipe."""
        with self._wake_lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._wake_r)
            os.close(self._wake_w)

    # --- output ---------------------------------------------------------------------------

    def _emit(self, raw: bytes, *, ends: bool = True) -> None:
        """Pass on one line, or (`ends` false) a piece of one that goes on, or its last part."""
        line = raw.decode("utf-8", errors="replace")
        if line.endswith("\r"):
            line = line[:-1]
        # Unseen: a line printed to a terminal shows a secret split by a colour code whole.
        line = self.masker.mask_unseen(line)
        self.tail.append(line)
        if self.on_line is None and self.on_text is None:
            return
        try:
            if self.on_line is not None:
                self.on_line(line)
            if self.on_text is not None:
                self.on_text(line + "\n" if ends else line)
        except Exception as exc:
            # The command keeps running to its end; the failure is reported in `detail`.
            self.callback_error = exc
            self.on_line = self.on_text = None

    def _emit_piece(self, raw: bytes, *, more: bool) -> bytes:
        """Pass on the first piece of the over-long line `raw`; return the rest of it.

        `more`: the line goes on in output not read yet. The rest is `raw` itself when no cut
        can be made yet.
        """
        # Cut as text, not bytes: a byte offset may fall inside a character or a secret, and
        # masking each piece apart would then show both halves. surrogateescape keeps bytes
        # that are not UTF-8 as they are, so text and bytes convert back exactly.
        text = raw.decode("utf-8", "surrogateescape")
        at = min(MAX_LINE_BYTES, len(raw) - 1) if more else MAX_LINE_BYTES
        # Back off continuation bytes to a character's start (at most 3 in UTF-8).
        for _ in range(3):
            if at <= 0 or raw[at] & 0xC0 != 0x80:
                break
            at -= 1
        limit = len(raw[:at].decode("utf-8", "surrogateescape"))
        cut = self.masker.cut_point(text, limit, more=more)
        if cut <= 0:
            return raw
        piece = text[:cut].encode("utf-8", "surrogateescape")
        self._emit(piece, ends=False)
        return raw[len(piece) :]

    def feed(self, chunk: bytes) -> None:
        """Split `chunk` into lines and pass the complete ones on."""
        buffer = self._buffer + chunk
        if b"\n" in buffer:
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                rest = raw
                while len(rest) > MAX_LINE_BYTES:
                    rest = self._emit_piece(rest, more=False)
                # A cut line whose last piece took all of it has nothing left to pass on.
                if rest or len(raw) <= MAX_LINE_BYTES:
                    self._emit(rest)
        while len(buffer) > MAX_LINE_BYTES:
            rest = self._emit_piece(buffer, more=True)
            if len(rest) == len(buffer):
                break  # too short yet to see whole a secret that may run across a cut
            buffer = rest
        self._buffer = buffer

    def flush(self) -> None:
        """Pass on a last line that had no newline."""
        if self._buffer:
            self._emit(self._buffer, ends=False)
            self._buffer = b""

    # --- stopping -------------------------------------------------------------------------

    def begin_stop(self, reason: Literal["timeout", "interrupted"], now: float) -> None:
        """SIGTERM the group (or the forwarded signal) and set the time for SIGKILL."""
        self.stop_reason = reason
        self.exited_before_stop = self.child_done
        self.kill_at = now + self.grace
        signum: int = signal.SIGTERM
        token = self.token
        if reason == "interrupted" and token is not None and token.forward and token.signum:
            signum = token.signum
        self.stop_sent = _signal_name(signum).removeprefix("SIG")
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signum)

    def kill_if_alive(self, now: float) -> None:
        """SIGKILL the group if anything of it is still running."""
        self.killed_at = now
        if self.pgid is not None and _live_members(self.pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
                self.kill_sent = True

    def output_deadline(self) -> float | None:
        """When to stop waiting for the end of output, once the group was stopped."""
        if not self.child_done or self.eof or self.stop_reason is None:
            return None  # until the stop, an open output means the command still runs
        # A grandchild that ignores TERM holds the pipe until the KILL.
        base = max(self.child_done_at, self.killed_at or self.kill_at)
        return base + OUTPUT_GRACE


def _drain(fd: int, run: _Run) -> None:
    """Read what is already in the pipe, without blocking, up to a limit."""
    taken = 0
    while taken < _DRAIN_LIMIT:
        try:
            chunk = os.read(fd, _READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        if not chunk:
            run.eof = True
            return
        taken += len(chunk)
        run.feed(chunk)


def _wait_loop(proc: subprocess.Popen[bytes], run: _Run, started: float) -> None:
    """Read output and react to exit, deadline and stop requests until the command is done."""
    assert proc.stdout is not None  # noqa: S101 - Popen was given stdout=PIPE
    out_fd = proc.stdout.fileno()
    os.set_blocking(out_fd, False)
    wake_r = run._wake_r

    poller = select.poll()
    poller.register(out_fd, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    # A pidfd becomes readable when the child exits, so the loop waits for the exit in the same
    # poll() as for output; without one (before Linux 5.3, some sandboxes) a thread waits.
    pidfd = _pidfd(proc.pid)
    waiter: threading.Thread | None = None
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    else:

        def _waiter() -> None:
            # A blocking waitpid(); the wake-up byte tells the loop the child is gone.
            run.returncode = proc.wait()
            run.wake()

        waiter = threading.Thread(target=_waiter, name=f"drillbook-wait-{proc.pid}", daemon=True)
        waiter.start()
    deadline = started + run.timeout
    try:
        while True:
            now = time.monotonic()
            if not run.child_done and run.returncode is not None:
                run.child_done = True
                run.child_done_at = now
            if run.stop_reason is None and not (run.child_done and run.eof):
                if run.token is not None and run.token.stopped:
                    run.begin_stop("interrupted", now)
                elif now >= deadline:
                    run.begin_stop("timeout", now)
            if run.stop_reason is not None and run.killed_at is None and now >= run.kill_at:
                run.kill_if_alive(now)
            output_deadline = run.output_deadline()
            if run.child_done and (
                run.eof or (output_deadline is not None and now >= output_deadline)
            ):
                break

            wake_at: float | None = None
            if run.stop_reason is None:
                wake_at = deadline
            elif run.killed_at is None:
                wake_at = run.kill_at
            if output_deadline is not None:
                wake_at = output_deadline if wake_at is None else min(wake_at, output_deadline)
            wait_ms = None
            if wake_at is not None:
                # poll() takes whole milliseconds in a C int; round up so we never wake early.
                wait_ms = min(max(0, int((wake_at - now) * 1000) + 1), _MAX_POLL_MS)

            for fd, _events in poller.poll(wait_ms):
                if fd == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                    continue
                if fd == pidfd:
                    run.returncode = proc.wait()  # exited: reaps at once
                    poller.unregister(pidfd)
                    continue
                try:
                    chunk = os.read(out_fd, _READ_SIZE)
                except BlockingIOError:
                    continue
                if chunk:
                    run.feed(chunk)
                else:
                    run.eof = True
                    poller.unregister(out_fd)
        if not run.eof:
            # A background process of the group still holds the pipe. Take what it already
            # wrote and stop listening; closing our end makes its later writes fail (EPIPE).
            _drain(out_fd, run)
            run.abandoned_output = not run.eof
        run.flush()
        if run.stop_reason is not None:
            _finish_stop(run)
    except BaseException:
        # KeyboardInterrupt without handle_signals, or a bug: never leave the group behind.
        run.kill_now()
        if waiter is not None:
            waiter.join()
        else:
            proc.wait()
        raise
    finally:
        if pidfd is not None:
            os.close(pidfd)
    if waiter is not None:
        waiter.join()


def _pidfd(pid: int) -> int | None:
    """A pidfd for `pid`, or None where the system has none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _finish_stop(run: _Run) -> None:
    """After a stop, wait until the group is gone: KILL it when the grace period ends."""
    assert run.pgid is not None  # noqa: S101 - a stop begins only after the start
    while run.killed_at is None and _live_members(run.pgid):
        remaining = run.kill_at - time.monotonic()
        if remaining <= 0:
            run.kill_if_alive(time.monotonic())
            break
        # A grandchild is not our child: its death cannot be waited for, only observed.
        time.sleep(min(_GROUP_CHECK_INTERVAL, remaining))
    if run.kill_sent:
        until = time.monotonic() + _KILL_CONFIRM
        while _live_members(run.pgid) and time.monotonic() < until:
            time.sleep(_GROUP_CHECK_INTERVAL)


#: Characters of output kept in a result's tail (and so in a journal line): 40 lines of a
#: terminal's width, and far from the line limits of log shippers (often 16 KiB to 256 KiB).
MAX_TAIL_CHARS = 8192


def _clip_tail(text: str) -> str:
    """The end of `text`, at most MAX_TAIL_CHARS, cut at a line start when one is near."""
    if len(text) <= MAX_TAIL_CHARS:
        return text
    end = text[-MAX_TAIL_CHARS:]
    newline = end.find("\n")
    if 0 <= newline < MAX_TAIL_CHARS // 2:
        end = end[newline + 1 :]
    return "[...]\n" + end


def _detail(run: _Run) -> str:
    """The one-line explanation of a finished command."""
    code = run.returncode
    if run.stop_reason is not None:
        if run.kill_now_sent:
            how = "KILL"
        elif run.kill_sent:
            how = f"{run.stop_sent}, then KILL after " + _format_seconds(run.grace)
        else:
            how = run.stop_sent
        if run.stop_reason == "timeout":
            text = f"timed out after {_format_seconds(run.timeout)}"
        else:
            signum = run.token.signum if run.token is not None else None
            text = "interrupted" + (f" by {_signal_name(signum)}" if signum is not None else "")
        text += f"; process group stopped ({how})"
        if run.exited_before_stop:
            text += (
                f"; the command itself had exited {code}, but a background process of its "
                "group kept the output open (redirect its output, e.g. >/dev/null 2>&1, or "
                "start it in a session of its own)"
            )
    elif code is not None and code < 0:
        text = f"killed by {_signal_name(-code)}"
    else:
        text = f"exited {code}"
        if run.shell and code in _SHELL_CODES:
            text += f" ({_SHELL_CODES[code]})"
    if run.abandoned_output:
        text += (
            f"; a process outside the group kept the output open, stopped reading "
            f"{_format_seconds(OUTPUT_GRACE)} after the stop"
        )
    if run.callback_error is not None:
        error = run.callback_error
        text += f"; output display failed ({type(error).__name__}: {error}), output was not shown"
    return text


def run_command(
    argv: Sequence[str] | str,
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    shell: bool = False,
    timeout: float,
    grace: float = 5.0,
    on_line: Callable[[str], None] | None = None,
    tail_lines: int = 40,
    masker: Masker | None = None,
    stop: StopToken | None = None,
    on_start: Callable[[int], None] | None = None,
    on_text: Callable[[str], None] | None = None,
) -> CommandResult:
    """Run one command in its own process group and say what happened.

    `argv` is a list of arguments, never passed through a shell; with `shell=True` it must be
    one string, run by `/bin/sh -c`. `env` is laid over this process's environment (a step adds
    its DRILLBOOK_* variables and keeps PATH); with `inherit_env=False` it is the whole
    environment. Output lines (stdout and stderr merged) are masked, passed to `on_line` as
    they arrive (in the calling thread) and the last `tail_lines` kept; `on_text` gets the same
    output as one text, in the pieces it arrives in: each line with its line break, a piece of
    a line too long to hold (`MAX_LINE_BYTES`) without one, so that what runs across lines or
    pieces can be found. After `timeout` seconds the group gets SIGTERM, and SIGKILL `grace`
    seconds later. `on_start` is called with the command's pid (its process group's id too)
    as soon as it runs; if it raises, the group is killed and the error raised.
    Raises only for a wrong call (TypeError) and from `on_start`; a command that cannot start is
    an outcome.
    """
    if shell:
        if not isinstance(argv, str):
            msg = "shell=True takes the command as one string"
            raise TypeError(msg)
        full = ("/bin/sh", "-c", argv)
    else:
        if isinstance(argv, str | bytes):
            msg = "a command is a list of arguments; pass shell=True to run a string through sh"
            raise TypeError(msg)
        full = tuple(argv)
    masker = masker if masker is not None else _DEFAULT_MASKER
    shown = tuple(masker.mask(a) for a in full)
    started = time.monotonic()

    def _result(outcome: Outcome, exit_code: int | None, tail: str, detail: str) -> CommandResult:
        duration_ms = round((time.monotonic() - started) * 1000)
        return CommandResult(shown, outcome, exit_code, duration_ms, tail, masker.mask(detail))

    if not full:
        return _result("error", None, "", "empty command")
    child_env: dict[bytes, bytes] | None = None
    if env is not None or not inherit_env:
        # As bytes: subprocess encodes every variable of a str mapping on every start, about
        # half the cost drillbook adds to a short command; os.environb is bytes already.
        extra = {os.fsencode(k): os.fsencode(v) for k, v in (env or {}).items()}
        child_env = {**os.environb, **extra} if inherit_env else extra
    if stop is not None and stop.stopped:
        reason = f" by {_signal_name(stop.signum)}" if stop.signum is not None else ""
        return _result("interrupted", None, "", f"not started: the run was interrupted{reason}")
    if not cwd.is_dir():
        what = "is not a directory" if cwd.exists() else "does not exist"
        return _result("error", None, "", f"working directory {what}: {cwd}")

    run = _Run(
        timeout=timeout,
        grace=grace,
        on_line=on_line,
        on_text=on_text,
        tail_lines=tail_lines,
        masker=masker,
        token=stop,
    )
    run.shell = shell
    try:
        if stop is not None:
            # Registered before the start, so a stop() from now on reaches this command; the
            # wait loop checks stop.stopped first thing, so one just before is not missed either.
            stop._register(run)
        try:
            proc = subprocess.Popen(
                full,
                cwd=cwd,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                bufsize=0,
            )
        except OSError as exc:
            outcome, detail = _not_started(full[0], exc, cwd)
            return _result(outcome, None, "", detail)
        except UnicodeEncodeError as exc:
            # An argument or a variable the system's encoding cannot carry (`é` in an ASCII
            # locale): the command never started.
            encoding = sys.getfilesystemencoding()
            bad = exc.object[exc.start : exc.end]
            detail = (
                f"cannot run {full[0]!r}: {bad!a} in its arguments "
                f"or environment cannot be passed in this locale's encoding ({encoding}); run "
                "drillbook under a UTF-8 locale (LC_ALL=C.UTF-8)"
            )
            return _result("error", None, "", detail)
        run.pgid = proc.pid  # a session leader's group id is its pid
        try:
            if on_start is not None:
                try:
                    on_start(proc.pid)
                except BaseException:
                    # Not recorded, so not to be left running: nobody would know it is there.
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    raise
            _wait_loop(proc, run, started)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
    finally:
        if stop is not None:
            stop._unregister(run)
        run.close()

    code = run.returncode
    outcome: Outcome
    if run.stop_reason is not None:
        outcome = run.stop_reason
    elif code == 0:
        outcome = "ok"
    else:
        outcome = "failed"
    return _result(outcome, code, _clip_tail("\n".join(run.tail)), _detail(run))
