"""The program's edge: every line a person reads passes through here, masked.

Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from drillbook.secrets import Masker

_CODES = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2", "cyan": "36"}

#: Why a standard stream stopped taking output ("stdout" or "stderr" -> the error), see `write`.
lost: dict[str, OSError] = {}


def write(stream: TextIO | None, text: str) -> None:
    """`text` and a newline to `stream`, flushed; a stream that fails stops taking output.

    The reader of a pipe may go away (`drillbook release | head`, a `tee` that the same Ctrl-C
    stopped, a closed terminal) or the file may not fit (stdout on a full disk): a release must
    not stop half-done for that, with staging changed and nothing recorded past the line that
    failed, nor an interruption turn into a crash. The stream's file descriptor is pointed at
    /dev/null instead, so every later write (invoke's, the interpreter's last flush) goes
    nowhere quietly, and `lost` keeps why, for the task layer to say so at the end.
    """
    if stream is None:
        # A stream closed before the program started (`2>&-`): print() would send its text to
        # stdout instead, into the JSON of a `--format json` run.
        return
    try:
        print(text, file=stream, flush=True)
    except OSError as exc:
        name = "stderr" if stream is sys.stderr or stream is sys.__stderr__ else "stdout"
        lost.setdefault(name, exc)
        mute(stream)


def mute(stream: TextIO | None) -> None:
    """Point `stream`'s file descriptor at /dev/null (a stream without one is left as it is)."""
    try:
        fd = stream.fileno()  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class ClosedStream(io.TextIOBase):
    """stdout when it was closed before drillbook started (`drillbook history >&-`): every
    write fails as a write to the closed descriptor would, so that what could not be shown is
    said (and a task that only reads exits 3), as for any stdout that cannot be written."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "stdout was closed before drillbook started")


def ready_streams() -> None:
    """Make stdout and stderr fit to write to, as the console script and every task start:
    `closed_stdout`, `blocking_streams`, `printable_stdout`."""
    closed_stdout()
    blocking_streams()
    printable_stdout()


def blocking_streams() -> None:
    """Make writes to stdout and stderr wait for a slow reader instead of losing lines.

    A pipe another program set non-blocking (a CI runner, a Node.js parent, a terminal a
    program left so) is inherited that way. Python then drops what does not fit in the pipe
    without a word: past what the pipe held, a release's lines were lost, its digest and
    "done" included, and it exited 0. A program that writes to a stream it did not open expects it
    to block, so it is made to.
    """
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            if not os.get_blocking(fd):
                os.set_blocking(fd, True)


def closed_stdout() -> None:
    """Put a `ClosedStream` in place of a stdout closed before the start (Python leaves None),
    and /dev/null on its descriptor: a file drillbook opens must not become descriptor 1,
    where a command started to inherit stdout would write into it. Made by the console script
    and by every task as they start (`ready_streams`)."""
    if sys.stdout is not None:
        return
    try:
        os.fstat(1)
    except OSError:
        held = os.open(os.devnull, os.O_WRONLY)
        if held != 1:
            os.dup2(held, 1)
            os.close(held)
    sys.stdout = ClosedStream()


def printable_stdout() -> None:
    """Let stdout show a character its encoding lacks as `?` rather than stop the program.

    drillbook prints rules, arrows and the user's own paths; a stdout in ASCII or Latin-1
    (PYTHONIOENCODING, a legacy locale) raised UnicodeEncodeError at the first of them, in the
    middle of a release. stderr already does the like (Python gives it `backslashreplace`).
    Made by the console script and by every task as they start (`ready_streams`): under a
    project's own `invoke` the stream is as the interpreter made it.
    """
    import codecs

    stream = sys.stdout
    encoding = getattr(stream, "encoding", None)
    if not encoding or not hasattr(stream, "reconfigure"):
        return
    try:
        utf8 = codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        utf8 = False
    if not utf8:
        stream.reconfigure(errors="replace")


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe (or socket) whose reader has closed its end."""
    import select

    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def quiet_broken_pipe() -> None:
    """Make a BrokenPipeError that ends the program, because stdout's reader went away, end
    it quietly with 141 (as cat is ended) instead of a traceback.

    For invoke's own program, which prints `--list` and `--help` with print() and lets the
    error out (`invoke --list | head -1`): the collection is imported before it prints, so
    this hook is what a project's tasks.py can do about it without changing invoke. Any
    other error, a broken pipe to a socket included, reaches the hook that was there.
    """
    previous = sys.excepthook
    if getattr(previous, "drillbook_quiet_pipe", False):
        return

    def hook(kind: type[BaseException], exc: BaseException, tb: object) -> None:
        if issubclass(kind, BrokenPipeError) and _stdout_reader_gone():
            mute(sys.stdout)  # the interpreter's last flush would fail again
            with contextlib.suppress(AttributeError, OSError, ValueError):
                sys.stderr.flush()
            os._exit(141)
        previous(kind, exc, tb)  # type: ignore[arg-type]

    hook.drillbook_quiet_pipe = True  # type: ignore[attr-defined]
    sys.excepthook = hook


class Console:
    """Writes masked lines to stdout and stderr, with colour where it helps."""

    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        *,
        masker: Masker | None = None,
        color: bool | None = None,
    ) -> None:
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.masker = masker
        if color is None:
            color = (
                # no-color.org: set and not empty; an empty NO_COLOR= leaves colour on.
                not os.environ.get("NO_COLOR")
                and os.environ.get("TERM") != "dumb"
                and hasattr(self.out, "isatty")
                and self.out.isatty()
            )
        self.color = color

    def mask(self, text: str) -> str:
        """Text with every known secret masked."""
        return self.masker.mask(text) if self.masker is not None else text

    def paint(self, text: str, style: str) -> str:
        """Text in a colour, when colour is on."""
        if not self.color or style not in _CODES:
            return text
        return f"\033[{_CODES[style]}m{text}\033[0m"

    def print(self, text: str = "", *, style: str | None = None, verbatim: bool = False) -> None:
        """One line (or several) to stdout; `verbatim` for a command's own output, which is
        masked but otherwise shown as the command wrote it."""
        text = self.mask(text) if verbatim else _as_typed(self.mask(text))
        if style:
            text = self.paint(text, style)
        write(self.out, text)

    def error(self, text: str) -> None:
        """One line (or several) to stderr."""
        write(self.err, _as_typed(self.mask(text)))

    def outcome(self, outcome: str) -> str:
        """An outcome word, coloured by what it means."""
        style = {
            "pass": "green",
            "ok": "green",
            "done": "green",
            "fail": "red",
            "failed": "red",
            "error": "red",
            "inconclusive": "yellow",
            "skipped": "dim",
            "interrupted": "yellow",
            "timeout": "red",
        }.get(outcome, "bold")
        return self.paint(outcome, style)


def _as_typed(text: str) -> str:
    """`text` with its drillbook commands as they must be typed (see `drillbook.commands`)."""
    # Imported here: `--help` and `--version` print nothing through a Console.
    from drillbook.commands import as_typed

    return str(as_typed(text))
