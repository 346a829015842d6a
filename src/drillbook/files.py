"""Files written so that a reader never sees half of one: temp file, fsync, rename."""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import tempfile
from pathlib import Path

from drillbook.errors import PreconditionFailed

#: What to do when .drillbook/ is on a file system mounted read-only.
READ_ONLY_HINT = (
    "the file system that holds .drillbook/ is mounted read-only: remount it read-write (or "
    "run from a copy of the project on a disk that is), then run the command again"
)


#: The kinds of file that are neither a regular file nor a folder, as a message names them.
_SPECIAL = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_kind(path: Path) -> str | None:
    """What `path` is (through symbolic links) when it is neither a regular file nor a folder:
    "a named pipe", "a character device", ...; None for those, and for nothing at all."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    return mode_kind(mode)


def mode_kind(mode: int) -> str | None:
    """`special_kind` of a file's `st_mode`."""
    for test, kind in _SPECIAL:
        if test(mode):
            return kind
    return None


def require_regular(path: Path, what: str) -> None:
    """Refuse, before anything is written, a named pipe or a device where `what` goes.

    Opened to be written, a named pipe blocks until something reads it, for ever; a device
    (`/dev/null`, through a link) swallows the file. Neither is what the person meant.
    """
    kind = special_kind(path)
    if kind is not None:
        msg = f"cannot write {what} to {path}: it is {kind}, not a regular file"
        raise PreconditionFailed(
            msg, hint=f"move {path} out of the way (nothing was written), then run again"
        )


def read_regular(path: Path) -> bytes:
    """The bytes of `path` if it is a regular file; OSError otherwise (FileNotFoundError when
    there is nothing). A named pipe put there would block a plain read until something wrote
    to it, for ever; it is never opened for that."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            msg = f"{path} is not a regular file"
            raise OSError(msg)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def write_atomic(
    path: Path,
    text: str | bytes,
    *,
    mode: int = 0o666,
    sync: bool = True,
    into_special: bool = False,
) -> Path:
    """Write `text` to `path` atomically: a crash leaves the old file or the new one, never half.

    The file gets `mode` less the umask, as a file that open() makes.

    `sync=False` skips the two fsyncs (the file's and its folder's) for output that can be made
    again, written by the thousand (docs pages): a reader still never sees half a file, but a
    crash of the machine may lose the newest; the caller syncs the folder once at the end.

    A named pipe or a device at `path` is refused (`PreconditionFailed`, `require_regular`),
    unless `into_special`: then it is written into, as a person who names `/dev/stdout` means.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    if not into_special:
        require_regular(path, "the file")
    elif special_kind(path) is not None:
        # A device or a pipe (`schema --out /dev/stdout`) is written into: the rename would
        # put a plain file in its place (in /dev, for root).
        with path.open("wb") as handle:
            handle.write(data)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode & ~umask())  # noqa: PTH101 - on the descriptor's path before the rename
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # noqa: PTH108
        raise
    if sync:
        sync_dir(path.parent)
    return path


@functools.cache
def umask() -> int:
    """The process's umask: the mode bits a file it makes must not have.

    A file written whole is made by mkstemp, always 0600, and given its mode after; that mode
    must be what the person's umask says (077: theirs alone; 002: their group's too), not a
    fixed 0644. /proc tells it without changing it; elsewhere it is set and put back, once.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def temp_prefix(path: Path) -> str:
    """How the temporary file of `path` starts: `.NAME.PID.`, so that one a killed process
    left behind is known as its (see `remove_temp_files`)."""
    return f".{path.name}.{os.getpid()}."


#: Where the runs of a project write files whole (notes, reports, the journal, its index and the
#: locks), relative to its root: where a killed run may leave a temporary file.
TEMP_FOLDERS = ("notes", "reports", ".drillbook/journal", ".drillbook/cache", ".drillbook/locks")


def remove_temp_files(root: Path, pid: int) -> list[str]:
    """Delete the temporary files that process `pid`, gone, left in the folders a run writes
    (`TEMP_FOLDERS`); their paths, relative to `root`.

    A process killed between making the temporary file of a file written whole and its rename
    leaves it there; nothing else would ever delete it. Only a process that is gone leaves one:
    a live `pid` has nothing removed.
    """
    import re

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    except OSError:
        return []  # alive, someone else's
    else:
        return []
    # `.NAME.PID.RANDOM.tmp` (write_atomic, the journal) and `.NAME.PID.tmp` (the lock).
    own = re.compile(rf"^\..+\.{pid}(\.[^.]+)?\.tmp$")
    removed = []
    for rel in TEMP_FOLDERS:
        try:
            entries = list(os.scandir(root / rel))
        except OSError:
            continue
        for entry in entries:
            if own.match(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)  # noqa: PTH108
                    removed.append(f"{rel}/{entry.name}")
    return sorted(removed)


def sync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def require_writable(folder: Path, what: str) -> None:
    """Refuse, before anything is written, a folder where `what` cannot be written.

    The folder need not exist: its nearest existing parent must be a folder this process may
    write, on a file system that is not mounted read-only (root passes every permission check,
    but not that one). Nothing is created to find out: a plan must change nothing.
    """
    probe = folder
    while not probe.exists() and probe.parent != probe:
        if probe.is_symlink():
            # A link to nothing: the write would make neither it nor what it names (mkdir
            # says "File exists"), only after the steps before it had run.
            target = probe.parent / probe.readlink()  # an absolute link stays as it is
            msg = (
                f"cannot write {what} to {folder}: {probe} is a symbolic link to {target}, "
                "which does not exist; expected a folder"
            )
            raise PreconditionFailed(
                msg, hint=f"create {target}, or remove the link {probe}, then run again"
            )
        probe = probe.parent
    if not probe.is_dir():
        kind = special_kind(probe) or "a file"
        msg = f"cannot write {what} to {folder}: {probe} is {kind}, expected a folder"
        raise PreconditionFailed(msg, hint=f"move {probe} out of the way")
    try:
        read_only = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        msg = f"cannot write {what} to {folder}: {probe} is on a file system mounted read-only"
        raise PreconditionFailed(msg, hint="write it elsewhere, or remount the file system")
    if not os.access(probe, os.W_OK | os.X_OK):
        msg = f"cannot write {what} to {folder}: {probe} is not writable"
        raise PreconditionFailed(msg, hint=f"fix the permissions of {probe}")


def require_replaceable(path: Path, what: str) -> None:
    """Refuse, before anything is written, a file that an atomic write could not replace.

    An immutable file (`chattr +i`) refuses the rename even to root, and the folder's
    permissions do not say so. Opening it to append writes nothing, and fails for the same
    reason; a file that does not exist yet is left to `require_writable`.
    """
    if path.is_dir():
        # Opening it says only "Is a directory"; the rename over it would fail the same way.
        msg = f"cannot write {what} to {path}: it is a folder, expected a file or nothing"
        raise PreconditionFailed(msg, hint=f"move the folder {path} out of the way, then run again")
    require_regular(path, what)  # the open below would block on a named pipe
    try:
        # Non-blocking too: a pipe made between the look above and this open fails, not hangs.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as exc:
        msg = f"cannot write {what} to {path}: {exc.strerror or exc}"
        raise PreconditionFailed(msg, hint=f"fix {path} (lsattr shows an immutable flag)") from None
    os.close(fd)


def blocked_folder(folder: Path) -> tuple[str, str] | None:
    """What stands in the way of making `folder` (a file, or a symbolic link to nothing, in
    its place or in a parent's) and what to do about it; None when nothing does.

    For the message of a write that failed: mkdir says only "File exists" of either.
    """
    for each in (folder, *folder.parents):
        try:
            if each.is_symlink() and not each.exists():
                target = each.parent / each.readlink()
                return (
                    f"{each} is a symbolic link to {target}, which does not exist; expected a "
                    "folder",
                    f"create {target}, or remove the link {each}, then run the command again",
                )
            if each.exists() and not each.is_dir():
                return (
                    f"{each} is {special_kind(each) or 'a file'}, expected a folder",
                    f"move the file {each} out of the way, then run the command again",
                )
        except OSError:
            return None
    return None
