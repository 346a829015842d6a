"""A run's surroundings: its id, journal, lock, signal handling, masking and console.

Every task that changes something opens one `RunSession`; it writes `run_started` first and
`run_finished` last, holds the lock for the environment, and turns SIGINT/SIGTERM into a
clean stop of the running command's process group.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drillbook import __version__, leftovers
from drillbook.console import Console
from drillbook.errors import (
    EXIT_ROLLBACK_FAILED,
    Crashed,
    DrillbookError,
    Interrupted,
    JournalUnwritable,
    PreconditionFailed,
)
from drillbook.journal import (
    Journal,
    failure_of,
    how_it_ended,
    journal_path,
    list_runs,
    live_events,
    new_run_id,
    read_journal,
    remove_unstarted_resumers,
    run_state,
)
from drillbook.leftovers import Leftover
from drillbook.lock import Lock, acquire_lock, argv_text, this_host
from drillbook.model import HttpCheck, Runbook
from drillbook.process import StopToken, handle_signals
from drillbook.runbook import LoadedRunbook
from drillbook.secrets import Masker, remember


def masker_for(loaded: LoadedRunbook, *, environ: frozenset[str] | None = None) -> Masker:
    """A masker that knows the environment's secret values and those of the config files: the
    keys listed in `config.secrets`, and those named like a secret (API_KEY), as verify-config
    masks them.

    `environ`: the secrets `Masker.from_environ()` found, when the caller read them once for
    many runbooks (docs), instead of reading the environment again.
    """
    masker = Masker(environ) if environ is not None else Masker.from_environ()
    runbook = loaded.runbook
    from drillbook.configcheck import read_config, salvage_secrets, secret_values

    names = set(runbook.config.secrets) if runbook.config is not None else set()
    for env in runbook.environments.values():
        if env.config is None:
            continue
        path = loaded.root / env.config
        try:
            # read_config refuses what is not a readable regular file; is_file() would raise
            # on a name too long or a folder that cannot be entered.
            values = read_config(path)
        except DrillbookError:
            # verify-config reports the bad file; the commands of this run may still read the
            # secrets in it (a gate, a deploy), so they are masked as well as they can be found.
            for value in salvage_secrets(path, names):
                masker.add(value)
            continue
        # Keys named like secrets too (API_KEY), as verify-config masks them: a command may
        # print what it read from the file.
        for value, guessed in secret_values(values, names):
            masker.add(value, guessed=guessed)
    # The variables the runbook itself gives its commands (deploy_env, a step's or a check's
    # env) and the headers of its checks: a command may print what it was given, and a name
    # that says secret (DEPLOY_TOKEN) is masked as one in a config file is.
    for given in _runbook_variables(runbook):
        values = {name: (value, None) for name, value in given.items()}
        for value, guessed in secret_values(values, names):
            masker.add(value, guessed=guessed)
    for key in names:
        if os.environ.get(key):
            masker.add(os.environ[key])
    remember(masker.secrets)
    return masker


def _runbook_variables(runbook: Runbook) -> Iterator[dict[str, str]]:
    """Each map of variables or headers that the runbook hands a command or a request."""
    for environment in runbook.environments.values():
        yield environment.deploy_env
    steps = [s for s in (runbook.deploy, runbook.gates.lint, runbook.gates.unit) if s is not None]
    checks = list(runbook.checks.values())
    for release in runbook.releases:
        for change in release.changes:
            steps += change.rollback.steps
            inline = (*change.expected.checks, *change.rollback.checks)
            checks += [c for c in inline if not isinstance(c, str)]
    for step in steps:
        yield step.env
    for check in checks:
        yield check.headers if isinstance(check, HttpCheck) else check.env


#: The fields of a journal event that tell a person what to type.
_SAYS_COMMANDS = ("undo", "then", "summary", "hint")


@dataclass
class RunSession:
    """One run of an action: what it acts on and what it writes to."""

    loaded: LoadedRunbook
    action: str
    env: str
    version: str | None
    run_id: str
    journal: Journal
    console: Console
    masker: Masker
    stop: StopToken
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    outcome: str = "failed"
    exit_code: int = 1
    results: list[Any] = field(default_factory=list)
    #: Whether running this run's rollback again is safe (every change it undoes says so).
    retry_safe: bool = True
    #: The steps that change something and have started, as the journal recorded them.
    changed: list[str] = field(default_factory=list)
    #: What the run's last words said (its headline, or the message of the error that stopped
    #: it) and the hint with them: `run_finished` repeats them for whoever reads that line alone.
    summary: str | None = None
    hint: str | None = None

    @property
    def root(self) -> Path:
        """The project root."""
        return self.loaded.root

    def event(self, event: str, *, sync: bool = True, **fields: Any) -> dict[str, Any]:
        """Write one journal event with the run's service, env and version filled in.

        `sync=False` for events of steps that change nothing: fsynced with the next event.
        """
        service = self.loaded.runbook.service
        base: dict[str, Any] = {"service": service, "env": self.env}
        if self.version is not None:
            base["version"] = self.version
        base.update(fields)
        if event == "deployed":
            # Read alone (a log store's alert on a deploy), the line names whom to ask.
            base.setdefault("owner", self.loaded.runbook.owner)
        said = [key for key in _SAYS_COMMANDS if isinstance(base.get(key), str)]
        if said:
            from drillbook.commands import for_service, several_runbooks

            # Read alone, the line's commands must work as typed: with several runbooks they
            # take `--service`, as history and the console print them.
            if several_runbooks(self.root):
                base.update({key: for_service(base[key], service) for key in said})
        written = self.journal.write(event, sync=sync, **base)
        if event == "step_started" and fields.get("changes"):
            self.changed.append(str(fields.get("step")))
        return written

    def elapsed_ms(self) -> int:
        """Milliseconds since the run started."""
        return round((time.monotonic() - self.started) * 1000)


def unfinished_runs(root: Path, env: str) -> list[dict[str, Any]]:
    """Runs on `env` that started and never finished, and that nobody resumed or abandoned."""
    out = []
    for info in list_runs(root):
        last = info.last or {}
        # A run closed by a resume may be open still: when that resume never started.
        resumed = last.get("event") == "run_closed" and last.get("how") == "resumed"
        if (info.finished and not resumed) or info.first is None:
            continue
        first = info.first
        if first.get("event") != "run_started" or first.get("env") != env:
            continue
        if not first.get("changes_world", True):
            continue
        events = live_events(root, read_journal(info.path).events)
        if any(e.get("event") in ("run_closed", "run_finished") for e in events):
            continue
        first = events[0] if events else first  # whole, not list_runs' summary
        left = leftovers_of(first, events)
        out.append(
            {
                **first,
                "path": str(info.path),
                "last": events[-1] if events else info.last,
                "leftovers": left,
                "next": _what_next(first, events, stops_first=bool(left)),
            }
        )
    return out


def _what_next(first: dict[str, Any], events: list[dict[str, Any]], *, stops_first: bool) -> str:
    """What to do with a run that never finished, as `resume` and `abandon` will judge it: only
    a release that had not failed resumes; the others are closed and done again.

    `stops_first`: the run left a command running, which resume stops before it goes on."""
    run_id = str(first.get("run"))
    env = first.get("env", "staging")
    if first.get("action") == "release":
        advice = failed_release_advice(run_id, first, events)
        if advice is None:
            stops = " (it stops what the run left running first)" if stops_first else ""
            return (
                f"`drillbook resume {run_id}` continues it from the step it stopped at{stops}; "
                f"`drillbook abandon {run_id}` closes it once you have checked {env}"
            )
        what, hint = advice
        return f"it {what}, so it cannot be resumed: {hint}"
    rolling = next((e for e in events if e.get("event") == "rollback_started"), {})
    target = rolling.get("to_version") or first.get("to_version")
    if first.get("action") == "rollback" and target and rollback_proven(events):
        return (
            f"its rollback to {target} had finished and its checks pass, so {env} runs "
            f"{target}: `drillbook abandon {run_id}` closes it; nothing else is left to do"
        )
    if first.get("action") == "rollback" and target and redeployed_by_rollback(events):
        # Its redeploy had finished: the same rollback again would start from the target and
        # go back one version further.
        return (
            f"its redeploy of {target} had finished, so {env} runs {target}, not yet proven: "
            f"`drillbook abandon {run_id}` closes it (and stops what it left running); then "
            f"{check_it_hint(env, target)}; running the rollback again would go back further"
        )
    found = first.get("found_version")
    # A rehearsal cut short leaves staging on whichever version it had reached, and a rehearsal
    # run again returns to what the journal says runs there now, not to what ran before.
    back = (
        f", or `drillbook deploy --env {env} --version {found}` puts back {found}, which ran "
        "before it"
        if found and first.get("action") in ("rehearse", "deploy")
        else ""
    )
    return (
        f"check {env}, then `drillbook abandon {run_id}` closes it (and stops what it left "
        f"running); then run the {first.get('action')} again if it is still needed{back}"
    )


def leftovers_of(first: dict[str, Any], events: list[dict[str, Any]]) -> list[Leftover] | None:
    """What the run whose journal this is left running; None when it ran on another host."""
    if first.get("host") not in (None, this_host()):
        return None
    return leftovers.find(events, str(first.get("run")))


def describe_leftovers(run: dict[str, Any], found: list[Leftover] | None) -> str:
    """One sentence on what a killed run left running, for the messages that name the run."""
    if found is None:
        return f"; it ran on {run.get('host')}: check there for its commands still running"
    if not found:
        return ""
    running = ", ".join(item.describe() for item in found)
    return f"; its {running} {'is' if len(found) == 1 else 'are'} still running"


def failed_release_advice(
    run_id: str, first: dict[str, Any], events: list[dict[str, Any]]
) -> tuple[str, str] | None:
    """What a release that had failed was doing when it stopped, and what to do instead of a
    resume (which refuses it); None when it had not failed, so a resume continues it.

    `first` is its `run_started` event, `events` all of them (`journal.failure_of` judges).
    """
    env = first.get("env", "staging")
    rolling, failed = failure_of(events)
    if rolling is None and failed is None:
        return None
    target = (rolling or {}).get("to_version") or first.get("previous")
    what = (
        f"was rolling {env} back to {target or 'its earlier version'}"
        if rolling is not None
        else f"had failed at {failed.get('step') if failed else '?'}"
    )
    if target and rollback_proven(events):
        # Killed after its rollback proved itself, before the run's own end: nothing is left
        # to do but to close it.
        what += f" (its rollback had finished and its checks pass, so {env} runs {target})"
        return what, f"`drillbook abandon {run_id}` closes it; nothing else is left to do"
    if target and redeployed_by_rollback(events):
        # `rollback --to` refuses a version the environment already runs: only the proof is
        # left to do.
        what += f" (its redeploy had finished, so {env} runs {target}, not yet proven)"
        finish = check_it_hint(env, target)
    elif target:
        finish = f"`drillbook rollback --env {env} --to {target}` rolls back and proves it"
    else:
        finish = f"check {env} and undo the changes by hand, as their rollback says"
    # Abandon first: until the run is closed, every run that changes the environment (the
    # rollback too) refuses to start, pointing back here.
    hint = f"`drillbook abandon {run_id}` closes it (and stops what it left running); then {finish}"
    return what, hint


def redeployed_by_rollback(events: list[dict[str, Any]]) -> bool:
    """Whether a run's rollback had deployed its target again (its checks may not have run)."""
    return any(e.get("event") == "deployed" and e.get("by") == "rollback" for e in events)


def rollback_proven(events: list[dict[str, Any]]) -> bool:
    """Whether a run's rollback finished and its checks passed (`rollback_finished` ok)."""
    return any(e.get("event") == "rollback_finished" and e.get("outcome") == "ok" for e in events)


def check_it_hint(env: str, version: str) -> str:
    """The command that checks `version` on `env`, said as a hint."""
    return f"`drillbook integration --env {env} --version {version}` checks {version} there"


def require_still_open(root: Path, run_id: str, what: str, env: str) -> None:
    """Refuse to `what` (resume, abandon) run `run_id` if it ended or was closed since.

    Both read the run before they hold the lock; while one waited for it, another may have
    resumed or abandoned the run, or the run itself, still going then, may have finished.
    """
    events = live_events(root, read_journal(journal_path(root, run_id)).events)
    if run_state(events) in ("open", "interrupted"):
        return
    msg = (
        f"run {run_id} {how_it_ended(events)} while this {what} waited for the lock of {env}, "
        "expected it still open; nothing was done"
    )
    raise PreconditionFailed(
        msg, hint=f"`drillbook history --env {env}` says how it ended; check {env} from there"
    )


def unfinished_refusal(
    root: Path, env: str, *, besides: str | None = None
) -> PreconditionFailed | None:
    """Why a run that changes `env` is refused when an earlier one never finished, or None.

    The run `besides` does not count (the one a resume continues, or the one a plan finds
    still going). Read-only, so that a plan can say what a release would meet.
    """
    stale = [r for r in unfinished_runs(root, env) if r["run"] != besides]
    if not stale:
        return None
    run = stale[0]
    # The service too: the services of a project share an environment's runs.
    service = f" of {run['service']}" if run.get("service") else ""
    what = f"{run.get('action')}{service} {run.get('version') or ''}".rstrip()
    msg = (
        f"run {run['run']} ({what} on {env}, "
        f"started {run.get('ts')}) never finished: it was killed or crashed, so "
        f"{env} may be half-changed" + describe_leftovers(run, run["leftovers"])
    )
    return PreconditionFailed(msg, hint=run["next"])


#: The runs this process opened, with whether each may change the world: the task layer
#: reads it to pick the exit code of a run whose console output was lost.
opened: list[tuple[str, bool]] = []


@contextlib.contextmanager
def open_session(
    loaded: LoadedRunbook,
    *,
    action: str,
    env: str,
    version: str | None,
    console: Console | None = None,
    masker: Masker | None = None,
    changes_world: bool = True,
    extra: dict[str, Any] | None = None,
    check_unfinished: bool = True,
    lock: bool = True,
    resuming: str | None = None,
    retry_safe: bool = True,
    also_lock: tuple[str, ...] = (),
) -> Iterator[RunSession]:
    """Open a run: journal, lock, signals; `run_finished` is written however it ends.

    `also_lock` names more environments whose locks the run holds beside its own, for an
    action that races runs on them too (a tag races every release that makes it).

    `resuming` names the unfinished run this one continues: it does not count as unfinished,
    and it is closed (`run_closed`, how "resumed") once this run holds the lock.
    """
    masker = masker or masker_for(loaded)
    console = console or Console(masker=masker)
    if console.masker is None:
        console.masker = masker
    root = loaded.root
    run_id = new_run_id()
    held = acquire_lock(root, env, run_id, argv=sys.argv) if lock else None
    also: list[Lock] = []
    try:
        if held is not None:
            also.extend(
                acquire_lock(root, scope, run_id, argv=sys.argv)
                for scope in dict.fromkeys(also_lock)
                if scope != env
            )
        for taken in (held, *also):
            if taken is not None and taken.warning:  # set whenever the lock was taken over
                console.error(f"warning: {taken.warning}")
        if resuming is not None:
            require_still_open(root, resuming, "resume", env)
            remove_unstarted_resumers(root, resuming)
        # After the lock: a run that is still going holds it (exit 75, naming it), so an
        # unfinished journal found from here on is one whose process died.
        if check_unfinished and changes_world:
            refusal = unfinished_refusal(root, env, besides=resuming)
            if refusal is not None:
                raise refusal
        journal = Journal.open(root, run_id, masker=masker, new=True)
        opened.append((run_id, changes_world))
        if resuming is not None:
            # Only once this run's journal exists: a resume that cannot write one leaves the
            # run it would continue open, to be resumed again, not closed by a run never seen.
            try:
                with Journal.open(root, resuming, masker=masker) as old:
                    old.write(
                        "run_closed",
                        how="resumed",
                        by=run_id,
                        service=loaded.runbook.service,
                        env=env,
                        **({"version": version} if version is not None else {}),
                    )
            except BaseException:
                journal.close()
                journal.path.unlink(missing_ok=True)  # still empty: nothing of this run ran
                raise
        if held is not None and held.taken_over_from:
            # The warning reaches only the console; the journal keeps whose lock this was.
            extra = {**(extra or {}), "lock_taken_over": _taken_over(held)}
        stop = StopToken()
        session = RunSession(
            loaded=loaded,
            action=action,
            env=env,
            version=version,
            run_id=run_id,
            journal=journal,
            console=console,
            masker=masker,
            stop=stop,
            retry_safe=retry_safe,
        )
        with (
            journal,
            handle_signals(
                stop,
                last_words=_last_words(action, env, run_id, masker, changes_world=changes_world),
            ),
        ):
            session.event(
                "run_started",
                run_action=action,
                action=action,
                changes_world=changes_world,
                runbook=loaded.display_path,
                runbook_sha256=loaded.sha256,
                owner=loaded.runbook.owner,
                escalation=loaded.runbook.escalation,
                drillbook=__version__,
                argv=argv_text([os.path.basename(sys.argv[0]), *sys.argv[1:]]),  # noqa: PTH119
                pid=os.getpid(),
                host=this_host(),
                user=_user(),
                **(extra or {}),
            )
            try:
                yield session
            except Interrupted as exc:
                exc.run = run_id
                session.outcome, session.exit_code = "interrupted", exc.exit_code
                if exc.hint is None:
                    exc.hint, same_again = _interrupted_advice(session)
                    exc.retry_safe = exc.retry_safe and same_again
                if not session.retry_safe and session.changed:
                    exc.retry_safe = False
                    unsafe = (
                        f"a rollback step that is not safe to run twice may have run: check "
                        f"{env} before running it again"
                    )
                    exc.hint = f"{exc.hint}; {unsafe}" if exc.hint else unsafe
                session.summary, session.hint = exc.message, exc.hint
                raise
            except JournalUnwritable as exc:
                exc.run = run_id
                if session.changed:
                    # What ran changed the environment; the rest cannot be recorded, so
                    # nothing more runs, and that is not "nothing changed" (exit 3).
                    exc.message += (
                        f"; {env} was already changed by {', '.join(session.changed)}, and "
                        "the run stopped there: a person must act"
                    )
                    exc.exit_code, exc.retry_safe = EXIT_ROLLBACK_FAILED, False
                    # "Run the command again" is refused while this run is open: say what
                    # resume and abandon will accept, from what the journal holds.
                    with contextlib.suppress(DrillbookError):
                        events = read_journal(session.journal.path).events
                        if events:
                            then = _what_next(events[0], events, stops_first=False)
                            exc.hint = (
                                "free disk space or fix the folder's permissions; then, for "
                                f"this run: {then}"
                            )
                session.exit_code = exc.exit_code
                raise
            except DrillbookError as exc:
                # The process exits with this error's code: the journal says the same.
                exc.run = run_id
                session.exit_code = exc.exit_code
                session.summary, session.hint = exc.message, exc.hint
                raise
            except Exception as exc:
                if os.environ.get("DRILLBOOK_DEBUG"):
                    raise
                changed = bool(session.changed)
                where = (
                    f"{env} was changed by {', '.join(session.changed)}: a person must act"
                    if changed
                    else "nothing was changed"
                )
                crash = Crashed(
                    f"internal error: {type(exc).__name__}: {exc}; {where}",
                    hint=(
                        f"the journal .drillbook/journal/{run_id}.jsonl says where it stopped; "
                        "this is a bug in drillbook: run again with DRILLBOOK_DEBUG=1 for the "
                        "traceback and report it"
                    ),
                    changed=changed,
                )
                crash.run = run_id
                session.outcome, session.exit_code = "crashed", crash.exit_code
                with contextlib.suppress(Exception):
                    session.event("run_crashed", error=f"{type(exc).__name__}: {exc}")
                raise crash from exc
            finally:
                _record_end(session)
    finally:
        for taken in reversed(also):
            taken.release()
        if held is not None:
            held.release()


def _last_words(
    action: str, env: str, run_id: str, masker: Masker, *, changes_world: bool
) -> Callable[[str], str]:
    """The line a second signal leaves before the process ends at once: its journal stops
    where the run was, as a killed run's does, and the next run asks what to do with it."""
    then = (
        f"`drillbook resume {run_id}` continues it, `drillbook abandon {run_id}` closes it"
        if action == "release"
        else f"check {env}, then `drillbook abandon {run_id}` closes it"
    )
    left = (
        f"; run {run_id} is left unfinished and a run that changes {env} refuses to start "
        f"until it is closed: {then}"
        if changes_world
        else ""
    )

    def words(name: str) -> str:
        return masker.mask(
            f"drillbook {action}: a second {name}: stopped at once, the running command's "
            f"process group killed{left}"
        )

    return words


def _record_end(session: RunSession) -> None:
    """Write `run_finished`. When that is the first write to fail, say so: the run did its
    work, but its journal now looks like that of a run that was killed."""
    was_broken = session.journal.broken
    ended = {
        "outcome": session.outcome,
        "exit": session.exit_code,
        "duration_ms": session.elapsed_ms(),
    }
    try:
        session.event("run_finished", **ended, **({} if was_broken else _last_line(session, ended)))
    except JournalUnwritable as exc:
        if was_broken:
            return  # the error that stopped the run says so already
        run_id = session.run_id
        with contextlib.suppress(Exception):
            session.console.error(
                f"warning: {exc.message}, so it does not record that run {run_id} ended "
                f"({session.outcome}); a run that changes {session.env} takes it for a run "
                f"that was killed and refuses to start: once there is room, "
                f"`drillbook abandon {run_id}` closes it"
            )
    except Exception:  # noqa: S110 - the end of a run must not hide how the run ended
        pass


def _last_line(session: RunSession, ended: dict[str, Any]) -> dict[str, Any]:
    """What `run_finished` says besides how the run ended, so that the line read alone (a log
    store shows one line) answers who owns the service, what happened and what to type next:
    the service's owner and where to page, the run's last words and their hint, and the
    owners of its changes, `undo` and `then` that `drillbook history` shows for the run as it
    ends."""
    runbook = session.loaded.runbook
    said: dict[str, Any] = {"owner": runbook.owner}
    if runbook.escalation:
        said["escalation"] = runbook.escalation
    if session.summary:
        said["summary"] = session.summary
    if session.hint:
        said["hint"] = session.hint
    # The line that ends the run is written whatever reading the journal back finds.
    try:
        from drillbook.history import run_entry, then_of

        events = read_journal(session.journal.path).events
        entry = run_entry(session.root, [*events, {"event": "run_finished", **ended}])
    except Exception:
        return said
    if entry is None:
        return said
    if entry.owners:
        said["owners"] = list(entry.owners)
    if entry.undo is not None:
        said["undo"] = entry.undo
    then = then_of(entry)
    if then is not None:
        said["then"] = then
    return said


def _interrupted_advice(session: RunSession) -> tuple[str | None, bool]:
    """What to do after a run was interrupted, read from its journal; and whether the same
    command run again does what this one set out to do (a "retry safe" answer).

    A release is resumed, or, when it had failed and was rolling back (which a resume
    refuses), its rollback is finished. A rollback, a rehearsal or a deploy is run again; but a
    rollback whose redeploy had finished left the environment on its target, and the same
    command again would roll back one version further.
    """
    run_id, env, action = session.run_id, session.env, session.action
    try:
        events = read_journal(session.journal.path).events
    except DrillbookError:  # deleted or unreadable meanwhile: advise from what is known
        events = []
    first = events[0] if events else {}
    if action == "release":
        advice = failed_release_advice(run_id, first, events)
        if advice is None:
            return (
                f"`drillbook resume {run_id}` continues from the interrupted step; "
                f"`drillbook abandon {run_id}` closes the run"
            ), True
        what, hint = advice
        return f"the release {what}, so it cannot be resumed: {hint}", True
    if not session.changed:
        return None, True
    version = session.version
    if action == "rollback":
        rolling = next((e for e in events if e.get("event") == "rollback_started"), {})
        target = rolling.get("to_version") or first.get("to_version")
        if target and redeployed_by_rollback(events):
            further = _previous_of(session, target)
            return (
                f"its redeploy of {target} had finished, so {env} runs {target}, but its "
                f"checks were cut short: the rollback is not proven. {check_it_hint(env, target)}; "
                "running the rollback again would go back further"
                + (f", from {target} to {further}" if further else "")
            ), False
        again = f"drillbook rollback --env {env}" + (f" --to {target}" if target else "")
        return (
            f"{env} may be half rolled back from {version or 'its version'} to "
            f"{target or 'the earlier one'}: `{again}` runs the rollback again"
        ), True
    found = first.get("found_version")
    back = (
        f"; `drillbook deploy --env {env} --version {found}` puts back {found}, which ran before"
        if found and (action == "rehearse" or found != version)
        else ""
    )
    if action == "rehearse":
        previous = first.get("previous") or "the earlier version"
        started = [e.get("step") for e in events if e.get("event") == "step_started"]
        proven = any(
            e.get("event") == "rollback_finished" and e.get("outcome") == "ok" for e in events
        )
        if found and proven and started and started[-1] in ("return-deploy", "return-checks"):
            # Cut short on the way back: the rollback was proven, V no longer runs. (A
            # baseline that failed returns too, with nothing proven.)
            return (
                f"the rollback to {previous} was proven; {env} was being put back on {found}, "
                f"so it may run {previous} or {found}, or one half-deployed{back}"
            ), True
        return (
            f"{env} may run {previous} or {version}, or "
            f"one half-deployed: `drillbook rehearse --version {version}` runs the rehearsal "
            f"again from its baseline{back}"
        ), True
    if action == "deploy":
        return (
            f"{env} may be half-deployed: `drillbook deploy --env {env} --version {version}` "
            f"deploys {version} again{back}"
        ), True
    return None, True


def _previous_of(session: RunSession, version: str) -> str | None:
    """The released version below `version` (git tags), or None when there is none or git
    cannot say."""
    from drillbook import gitops

    try:
        return gitops.previous_version(session.root, version, session.loaded.runbook.tag_format)
    except DrillbookError:
        return None


def _taken_over(held: Lock) -> dict[str, Any]:
    """Whose lock a run took over and why, for its `run_started` event."""
    holder = held.taken_over_from or {}
    if "corrupt" in holder:
        return {"corrupt": holder["corrupt"]}
    said = {key: holder[key] for key in ("run", "pid", "host", "started") if key in holder}
    return {**said, "why": held.stale_because}


def _user() -> str:
    """The login name, as text the journal can hold.

    It comes from LOGNAME or USER, decoded as the locale decodes: `josé` under LC_ALL=C with
    PYTHONUTF8=0, or a name in Latin-1, held bytes UTF-8 could not write, and every run that
    journals stopped with an internal error before its first step.
    """
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
    return argv_text([name])[0]
