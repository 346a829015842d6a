"""The task layer's shared parts: error reporting, exit codes, output format, the project."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from invoke import Context, Exit, task

from drillbook.console import Console, ready_streams
from drillbook.errors import (
    EXIT_INVALID,
    EXIT_LOCKED,
    EXIT_PRECONDITION,
    EXIT_SIGHUP,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    DrillbookError,
    InvalidInput,
)
from drillbook.usage import REST_ATTRIBUTE

F = TypeVar("F", bound=Callable[..., Any])


def drill_task(*, rest: str | None = None, **options: Any) -> Callable[[F], Any]:
    """An invoke task whose DrillbookErrors become a clear message and the right exit code."""

    def wrap(fn: F) -> Any:
        @functools.wraps(fn)
        def body(c: Context, *args: Any, **kwargs: Any) -> Any:
            name = fn.__name__.replace("_", "-")
            try:
                result = run(name, c, *args, **kwargs)
            except Exit as exc:
                if _stdout_lost(name, exc.code):
                    raise Exit(code=EXIT_PRECONDITION) from None
                raise
            if _stdout_lost(name, 0):
                raise Exit(code=EXIT_PRECONDITION)
            return result

        def run(name: str, c: Context, *args: Any, **kwargs: Any) -> Any:
            if not _in_task:  # a task's body run by another task's (a project's own) shares it
                _json_written.clear()
                _json_pending.clear()
            _in_task.append(True)
            ready_streams()
            try:
                _require_working_directory()
                _refuse_remainder(name, c, rest)
                _refuse_dry(name, c)
                return fn(c, *args, **kwargs)
            except DrillbookError as exc:
                report_error(exc, task_name=name)
                if kwargs.get("format") == "json":
                    # A pipeline that asked for JSON gets JSON, refusals included.
                    _json_failure(exc, task_name=name)
                raise Exit(code=exc.exit_code) from None
            except KeyboardInterrupt:
                # A task that is no run (check, plan, history) stopped by Ctrl-C: the program
                # says so on stderr and exits 130; a pipeline that asked for JSON gets it.
                if kwargs.get("format") == "json":
                    from drillbook.errors import Interrupted

                    stop = Interrupted(EXIT_SIGINT - 128, "interrupted (SIGINT) before it finished")
                    stop.hint = "every file it wrote is whole, so running it again is safe"
                    _json_failure(stop, task_name=name)
                raise
            except (Exit, SystemExit):
                raise
            except Exception as exc:
                # A bug, not an input problem; the traceback helps only the maintainers.
                if os.environ.get("DRILLBOOK_DEBUG"):
                    raise
                what = f"internal error: {type(exc).__name__}: {exc}"
                hint = (
                    "this is a bug in drillbook; run again with DRILLBOOK_DEBUG=1 for the "
                    "traceback and report it"
                )
                Console(masker=_masker()).error(f"drillbook {name}: {what}\n  hint: {hint}")
                if kwargs.get("format") == "json":
                    # A pipeline that asked for JSON gets JSON, a bug's end included.
                    bug = DrillbookError(what, hint=hint)
                    _json_failure(bug, task_name=name, outcome="internal_error")
                raise Exit(code=EXIT_INVALID) from None
            finally:
                _flush_json()

        if rest is not None:
            setattr(body, REST_ATTRIBUTE, rest)
        return task(**options)(body)

    return wrap


def _refuse_remainder(name: str, c: Context, rest: str | None) -> None:
    """Refuse words after `--` under `invoke`, which keeps them for `c.run` (no task reads
    them): `invoke check -- a.yaml` checked runbooks/, not a.yaml. The `drillbook` program
    hands them to the task's bare words itself, so none reach here from it."""
    from drillbook.errors import UsageError

    remainder = getattr(c, "remainder", "")
    if not remainder:
        return
    msg = f"the words after `--` are not read under invoke; got {remainder!r}"
    hint = (
        f"give each as `--{rest} WORD`"
        if rest
        else f"leave them out; `invoke {name} --help` lists its options"
    )
    raise UsageError(msg, hint=hint)


def _refuse_dry(name: str, c: Context) -> None:
    """Refuse `invoke --dry TASK` (invoke's `run.dry`): it makes invoke's `c.run` echo its
    commands instead of running them, and drillbook's tasks run theirs without it, so
    `invoke --dry release` made a real release."""
    from drillbook.errors import UsageError

    try:
        dry = bool(c.config.run.dry)
    except AttributeError:  # a Context without invoke's run settings
        return
    if dry:
        msg = (
            f"invoke's --dry (run.dry) does not reach drillbook's tasks: {name} would run as "
            "without it"
        )
        hint = "for a run that changes nothing, `invoke plan` or `invoke release --dry-run`"
        raise UsageError(msg, hint=hint)


def _require_working_directory() -> None:
    """Refuse to start in a working directory that was deleted (or moved) under the shell.

    Every task finds its project, and reads the paths typed, from there; without it each
    stopped at its first look as an internal error.
    """
    from drillbook.errors import UsageError

    try:
        os.getcwd()  # noqa: PTH109 - the check itself
    except FileNotFoundError:
        pwd = os.environ.get("PWD")  # the shell's idea of it; stale when it still exists
        where = f" ({pwd})" if pwd and not os.path.exists(pwd) else ""  # noqa: PTH110
        msg = f"the working directory{where} no longer exists: it was deleted or moved"
        raise UsageError(msg, hint="cd into the project again, then run the command") from None


def _stdout_lost(name: str, code: int) -> bool:
    """Say so when stdout failed during the task; True when that should make it exit 3.

    A reader that went away (a broken pipe: `drillbook history | head -1`) chose to stop
    reading, so the task's own exit code stands. Any other failure (a full disk) left output
    someone meant to keep incomplete: a task that otherwise succeeded exits 3 for it, as for
    an output folder it cannot write. Not a run that may have changed the world, though: 3
    says nothing changed, and its exit code must say what the run did (the journal has it
    all), so that one keeps its code and only the message says the output is incomplete.
    """
    from drillbook.console import lost

    exc = lost.get("stdout")
    if exc is None or isinstance(exc, BrokenPipeError):
        return False
    from drillbook.session import opened

    Console().error(
        f"drillbook {name}: its output to stdout could not be written "
        f"({exc.strerror or exc}), so it is incomplete\n"
        "  hint: send stdout where it fits and run it again; what a run changed is in its "
        "journal (`drillbook history`), and a release done is not done twice"
    )
    return code == 0 and not any(changes for _, changes in opened)


#: Set once a task has written its JSON document to stdout (a list, for a module-level flag).
_json_written: list[bool] = []
#: A task's JSON document (and the console to print it through) until the task ends: a
#: task that refuses or fails after it (a plan that would be refused, checks that did not
#: pass) adds why to that one document rather than print a second one after it.
_json_pending: list[tuple[str, Console | None]] = []
#: Whether a task is running: only then does its document wait for its end.
_in_task: list[bool] = []


def emit_json(text: str, console: Console | None = None) -> None:
    """Write a task's JSON document to stdout (through `console` when given: it masks), its
    drillbook commands as they must be typed (see `drillbook.commands`); within a task, as
    it ends."""
    _json_written.append(True)
    if _in_task:
        _json_pending.append((text, console))
        return
    _write_json(text, console)


def _flush_json() -> None:
    """Write the document a task emitted, now that it (the outermost one) has ended."""
    if _in_task:
        _in_task.pop()
    if _in_task:
        return
    pending = list(_json_pending)
    _json_pending.clear()
    for text, console in pending:
        _write_json(text, console)


def _json_failure(exc: DrillbookError, *, task_name: str, outcome: str | None = None) -> None:
    """Say in JSON why a task ends with `exc`: added to the document it emitted, if any (its
    own, and why it ends with this exit code), else as a document of its own."""
    if _json_pending:
        text, console = _json_pending[0]
        _json_pending[0] = (
            _with_error(text, exc, task_name=task_name, outcome=outcome),
            console,
        )
    elif not _json_written:
        emit_json(error_json(exc, task_name=task_name, outcome=outcome))


def _with_error(
    text: str, exc: DrillbookError, *, task_name: str, outcome: str | None = None
) -> str:
    """A task's JSON document with the error that ended the task: its message, hint, exit
    code and whether a retry is safe, under the keys of a refusal's document."""
    import json

    try:
        doc = json.loads(text)
    except ValueError:
        return text
    if not isinstance(doc, dict):
        return text
    error = json.loads(error_json(exc, task_name=task_name, outcome=outcome))
    # The task's own outcome word stays when it has one (a run's `rolled_back`); the exit
    # code is the one the process ends with.
    merged = {**error, **doc}
    for key in ("task", "exit", "error", "hint", "retry_safe"):
        merged[key] = error[key]
    return json.dumps(merged, indent=2)


def _write_json(text: str, console: Console | None) -> None:
    if console is not None:
        console.print(text)
    else:
        from drillbook.commands import as_typed
        from drillbook.console import write

        write(sys.stdout, as_typed(text))


_ERROR_OUTCOMES = {
    EXIT_INVALID: "invalid",
    EXIT_PRECONDITION: "refused",
    EXIT_LOCKED: "locked",
    EXIT_SIGHUP: "interrupted",
    EXIT_SIGINT: "interrupted",
    EXIT_SIGTERM: "interrupted",
}


def error_json(exc: DrillbookError, *, task_name: str, outcome: str | None = None) -> str:
    """An error as the JSON document of a task run with `--format json`."""
    import json

    payload: dict[str, Any] = {
        "task": task_name,
        "outcome": outcome or _ERROR_OUTCOMES.get(exc.exit_code, "failed"),
        "exit": exc.exit_code,
        "error": exc.message,
        "hint": exc.hint,
        "retry_safe": exc.retry_safe,
        # The run it ended, for `drillbook resume RUN` or `abandon RUN`; null before a run.
        "run": exc.run,
        "journal": f".drillbook/journal/{exc.run}.jsonl" if exc.run else None,
    }
    if isinstance(exc, InvalidInput):
        payload["problems"] = [p.as_dict() for p in exc.problems]
    masker = _masker()
    return json.dumps(masker.mask_obj(payload) if masker else payload, indent=2)


def report_error(exc: DrillbookError, *, task_name: str, console: Console | None = None) -> None:
    """Show an error the way every task does: what, where, the fix, whether a retry is safe."""
    console = console or Console(masker=_masker())
    if isinstance(exc, InvalidInput):
        for problem in exc.problems:
            console.error(str(problem))
        files = len({p.file for p in exc.problems})
        count = len(exc.problems)
        console.error(
            f"drillbook {task_name}: {count} problem{'s' if count != 1 else ''} in "
            f"{files} file{'s' if files != 1 else ''}; nothing ran"
        )
        return
    console.error(f"drillbook {task_name}: {exc.message}")
    if exc.hint:
        console.error(f"  hint: {exc.hint}")
    if exc.retry_safe is not None:
        console.error(f"  retry safe: {'yes' if exc.retry_safe else 'no'}")


def _masker() -> Any:
    """The environment's secrets and the config secrets of every runbook read so far."""
    try:
        from drillbook.secrets import Masker, remembered
    except ImportError:  # only while the package is half-installed
        return None
    return Masker.from_environ(extra=remembered())


def require_format(value: str) -> None:
    from drillbook.errors import UsageError

    if value not in ("text", "json"):
        msg = f"--format expects text or json, got {value!r}"
        raise UsageError(msg)


def require_path(value: str | None, what: str) -> None:
    """Refuse an empty path (`--out ""`, `check ""`): an unset shell variable, most likely.

    `Path("")` is the working directory, so it was taken as `.`: `schema --out ""` wrote
    into the folder the command ran in, `check ""` looked for runbooks there.
    """
    from drillbook.errors import UsageError

    if value == "":
        msg = f"{what} is empty (''), expected a path"
        hint = "name a file or folder (an unset shell variable gives an empty word)"
        raise UsageError(msg, hint=hint)


def project(service: str | None = None) -> Any:
    from drillbook.commands import name_service
    from drillbook.project import find_project_root
    from drillbook.runbook import load_project_runbook
    from drillbook.session import masker_for

    loaded = load_project_runbook(find_project_root(), service)
    # Its config secrets become known to every error message of the task from here on, and
    # so does its service, for the commands they print (see `drillbook.commands`).
    masker_for(loaded)
    name_service(loaded.root, loaded.runbook.service)
    return loaded


def run_console(format: str) -> Console:
    require_format(format)
    if format != "json":
        return Console()
    # With --format json, stdout carries only the JSON; progress goes to stderr, and nowhere
    # when stderr is closed.
    if sys.stderr is None:
        return Console(out=open(os.devnull, "w", encoding="utf-8"))  # noqa: PTH123
    return Console(out=sys.stderr)


def finish(session: Any, outcome: Any, format: str) -> None:
    from drillbook.output import print_digest, summary_json

    session.outcome = outcome.outcome
    session.exit_code = outcome.exit_code
    session.summary = outcome.headline
    console = session.console
    if outcome.exit_code != 0:
        print_digest(session, outcome)
    else:
        console.print(console.paint(outcome.headline, "green"))
        for name, value in outcome.artifacts.items():
            console.print(f"  {name}: {value}")
        console.print(f"  journal: .drillbook/journal/{session.run_id}.jsonl")
    if format == "json":
        emit_json(summary_json(session, outcome))


RUN_HELP = {
    "env": "the environment (default: staging)",
    "version": "the release version (default: the newest in the runbook)",
    "service": "which runbook, when runbooks/ holds several",
    "format": "text (default) or json (a summary on stdout for CI)",
}


def confirm_env(env: str, yes: bool, doing: str, *, what: str | None = None) -> None:
    """Ask before `doing` (releasing, deploying) anything to an environment other than staging.

    `what` says it whole when "`doing` to `env`" does not ("rolling back production").
    Without a terminal to ask, `--yes` is the answer; nothing has run when this refuses.
    """
    import sys

    from drillbook.errors import UsageError

    if env == "staging" or yes:
        return
    what = what or f"{doing} to {env}"
    # A closed stdin (`<&-`) leaves sys.stdin None: no terminal either; nor is there one to
    # ask on when stderr, where the question goes, is closed.
    if sys.stdin is None or not sys.stdin.isatty() or sys.stderr is None:
        msg = f"{what} needs confirmation, and there is no terminal to ask"
        raise UsageError(msg, hint="pass --yes to confirm")
    # The question goes to stderr, as progress does: stdout may be a file or a pipe (the JSON
    # of --format json), where the person would never see it and it would spoil the output.
    sys.stderr.write(f"{what}: type the environment's name to go on: ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer:  # Ctrl-D at the prompt: no answer is no
        from drillbook.console import write

        write(sys.stderr, "")  # the message on a line of its own, not after the prompt
        msg = f"not confirmed (no answer, expected {env!r}); nothing ran"
        raise UsageError(msg, hint="pass --yes to confirm without a prompt")
    if answer.strip() != env:
        msg = f"not confirmed (expected {env!r}); nothing ran"
        raise UsageError(msg)
