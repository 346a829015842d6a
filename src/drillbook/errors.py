"""drillbook's exceptions: one base that knows its exit code and how to show itself.

Library code raises these; only the task layer turns them into console output and exit codes.
A failed check during a run is a result, not an exception: raise only when a run must stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Exit codes of the contract (SPEC.md, "Exit codes").
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_INVALID = 2
EXIT_PRECONDITION = 3
EXIT_ROLLED_BACK = 4
EXIT_ROLLBACK_FAILED = 5
EXIT_LOCKED = 75
EXIT_SIGINT = 130
EXIT_SIGTERM = 143
#: A closed terminal (SIGHUP) stops a run as SIGTERM does; 128 + 1, as the shell reports it.
EXIT_SIGHUP = 129


class DrillbookError(Exception):
    """Base of every error drillbook raises on purpose."""

    exit_code: int = EXIT_INVALID
    #: Whether running the same command again is safe (None: not applicable).
    retry_safe: bool | None = None
    #: The id of the run this error ended, when it ended one (its journal says where).
    run: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        text = self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class UsageError(DrillbookError):
    """The command line or the project layout is wrong; nothing ran."""

    exit_code = EXIT_INVALID
    retry_safe = True


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an input file, located to the character."""

    file: str
    line: int
    column: int
    field: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        field = f" {self.field}:" if self.field else ""
        text = f"{where}:{field} {self.message}"
        if self.hint:
            text += f" ({self.hint})" if self.hint.startswith("did you mean") else f"; {self.hint}"
        return text

    def as_dict(self) -> dict[str, object]:
        """The problem as plain data, for `--format json`."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "message": self.message,
            "hint": self.hint,
        }


class InvalidInput(DrillbookError):
    """A runbook or config file is invalid; it lists every problem found."""

    exit_code = EXIT_INVALID
    retry_safe = True

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PreconditionFailed(DrillbookError):
    """The world refused the run (dirty tree, tag elsewhere, no identity); nothing changed."""

    exit_code = EXIT_PRECONDITION
    retry_safe = True


class TagElsewhere(PreconditionFailed):
    """The release tag exists on a commit other than the one a run would tag."""


class TagsMissing(PreconditionFailed):
    """A shallow clone, or one that fetches no tags, holds no tag of an earlier release: the
    version to go back to is unknown, not absent."""


class CheckFailed(DrillbookError):
    """A check failed and nothing needed rolling back.

    Running the checks again is safe unless one of them is not safe to repeat (a POST, a
    command nobody declared free of side effects): `retry_safe` says which it is.
    """

    exit_code = EXIT_CHECK_FAILED

    def __init__(self, message: str, *, hint: str | None = None, retry_safe: bool = True) -> None:
        super().__init__(message, hint=hint)
        self.retry_safe = retry_safe


class RolledBack(DrillbookError):
    """A step or check failed; the rollback ran and its checks passed."""

    exit_code = EXIT_ROLLED_BACK
    retry_safe = True


class RollbackFailed(DrillbookError):
    """The rollback failed too: a person must act."""

    exit_code = EXIT_ROLLBACK_FAILED
    retry_safe = False


class StepFailed(DrillbookError):
    """A step that changes something failed and no rollback applies."""

    exit_code = EXIT_CHECK_FAILED


class LockHeld(DrillbookError):
    """Another run holds the project's lock."""

    exit_code = EXIT_LOCKED
    retry_safe = True


class JournalUnwritable(DrillbookError):
    """The journal cannot be written, so no further step that changes anything may run."""

    exit_code = EXIT_PRECONDITION
    retry_safe = True


class Interrupted(DrillbookError):
    """SIGINT or SIGTERM stopped the run; the journal says where."""

    retry_safe = True

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class Crashed(DrillbookError):
    """A run stopped on an error of drillbook itself; the journal says where.

    Its exit code says what is left: 5 when a step that changes something had started (a
    person must act), else 1.
    """

    def __init__(self, message: str, *, hint: str | None = None, changed: bool) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = EXIT_ROLLBACK_FAILED if changed else EXIT_CHECK_FAILED
        self.retry_safe = not changed
