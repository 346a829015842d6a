"""`resume` and `abandon`: continue or close a run that was interrupted or killed.

Both first stop what a killed run left running (its last command's process group, see
`leftovers`), under the environment's lock, so that nothing of it runs twice at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from invoke import Context, Exit

from drillbook.console import Console
from drillbook.project import find_project_root
from drillbook.tasks._base import RUN_HELP, drill_task, finish, run_console


def _find_run(root: Path, run: str) -> Any:
    from drillbook.errors import UsageError
    from drillbook.journal import list_runs

    runs = list_runs(root)
    # A whole id is that run's even when it is also the start of another's.
    matches = [r for r in runs if r.run_id == run] or [r for r in runs if r.run_id.startswith(run)]
    if len(matches) != 1:
        recent = ", ".join(r.run_id for r in runs[:5]) or "none"
        what = "no run" if not matches else f"{len(matches)} runs"
        msg = f"{what} matching {run!r} in .drillbook/journal (recent: {recent})"
        raise UsageError(msg)
    return matches[0]


def _run_state(root: Path, info: Any) -> tuple[str, list[dict[str, Any]]]:
    """open (killed), interrupted, closed or finished; and the events."""
    from drillbook.journal import live_events, read_journal, run_state

    events = live_events(root, read_journal(info.path).events)
    return run_state(events), events


def _last_step(events: list[dict[str, Any]]) -> str | None:
    """`step unit started` / `step deploy interrupted`: where the run was when it stopped."""
    for event in reversed(events):
        if event.get("event") in ("step_started", "step_finished") and event.get("step"):
            how = "started" if event["event"] == "step_started" else event.get("outcome")
            return f"step {event['step']} {how or 'finished'}"
    return None


def _list_resumable(console: Console, root: Path) -> None:
    from drillbook.history import stopped_run
    from drillbook.journal import list_runs
    from drillbook.lock import live_holder
    from drillbook.session import describe_leftovers, leftovers_of

    found = False
    for info in list_runs(root):
        state, events = _run_state(root, info)
        if state in ("open", "interrupted"):
            first = events[0] if events else {}
            last = events[-1] if events else {}
            if first.get("event") != "run_started" and not _live_holder_is(root, info.run_id):
                # Killed as it started (an empty journal, or a torn first line): nothing says
                # what it was, and nothing of it ran.
                console.print(
                    f"{info.run_id}  {state:<11} nothing readable: killed as it started, "
                    f"before any step; `drillbook abandon {info.run_id}` closes it"
                )
                found = True
                continue
            env = str(first.get("env", "?"))
            holder = live_holder(root, env) if state == "open" else None
            if holder is not None and holder.get("run") == info.run_id:
                # Not killed: still going. Its command is its own, not one left running.
                state = "running"
                running = f"; pid {holder['pid']} holds the lock of {env}: wait for it"
            elif first:
                running = describe_leftovers(first, leftovers_of(first, events))
            else:
                running = ""
            console.print(
                f"{info.run_id}  {state:<11} {first.get('action', '?')} of "
                f"{first.get('service', '?')} {first.get('version') or ''} on "
                f"{first.get('env', '?')}, "
                f"last: {_last_step(events) or last.get('event')}{running}"
            )
            # What history says to type about it: `resume` takes only some of these runs (a
            # release that neither failed nor was overtaken), the rest are abandoned.
            undo, then = stopped_run(root, events)
            for label, text in (("undo", undo), ("then", then)):
                if text and state != "running":
                    console.print(f"  {label}: {text}")
            found = True
    if not found:
        console.print("no interrupted or unfinished runs")


def _live_holder_is(root: Path, run_id: str) -> bool:
    """Whether run `run_id`, alive, holds a lock of the project now (it may have only just
    opened its journal)."""
    from drillbook.lock import LOCK_DIR, live_holder

    try:
        scopes = [p.stem for p in (root / LOCK_DIR).glob("*.lock")]
    except OSError:
        return False
    return any((live_holder(root, scope) or {}).get("run") == run_id for scope in scopes)


def _unclosed_run(
    console: Console, root: Path, run: str | None, what: str
) -> tuple[Any, list[dict[str, Any]]] | None:
    """The run to resume or abandon and its events; without RUN, list the candidates."""
    from drillbook.errors import UsageError

    if run is None:
        _list_resumable(console, root)
        return None
    info = _find_run(root, run)
    state, events = _run_state(root, info)
    if state not in ("open", "interrupted"):
        from drillbook.journal import how_it_ended

        msg = (
            f"run {info.run_id} {how_it_ended(events)}; only an interrupted or unfinished run "
            f"can be {what}"
        )
        raise UsageError(msg, hint="`drillbook history --since all` shows every run and its end")
    return info, events


def _stop_leftovers(
    console: Console, run_id: str, events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Stop what a killed run left running (its last command's group); what was stopped.

    Called with the environment's lock held, so nothing else of drillbook's is running there.
    """
    from drillbook import leftovers
    from drillbook.errors import PreconditionFailed
    from drillbook.session import leftovers_of

    first = events[0] if events else {}
    found = leftovers_of(first, events)
    if found is None:
        console.error(
            f"warning: run {run_id} ran on {first.get('host')}; what it left running there "
            "cannot be seen from here"
        )
        return []
    stopped = []
    for item in found:
        console.print(f"stopping what run {run_id} left running: {item.describe()}")
        survivors = leftovers.stop(item, run_id)
        if survivors:
            msg = (
                f"could not stop what run {run_id} left running: pids "
                f"{', '.join(map(str, survivors))} of its {item.step} survive SIGKILL"
            )
            raise PreconditionFailed(
                msg, hint="look at them with ps; a process in D state waits on I/O"
            )
        stopped.append({"step": item.step, "pgid": item.pgid, "pids": list(item.pids)})
    return stopped


def _remove_temp_files(
    console: Console, root: Path, run_id: str, first: dict[str, Any]
) -> list[str]:
    """Delete the temporary files a killed run left (a note or report it was writing when it
    died); what was deleted. Only of a run on this host, whose process is gone."""
    from drillbook.files import remove_temp_files
    from drillbook.lock import this_host

    pid = first.get("pid")
    if first.get("host") != this_host() or isinstance(pid, bool) or not isinstance(pid, int):
        return []
    removed = remove_temp_files(root, pid)
    if removed:
        console.print(f"removing what run {run_id} left half-written: {', '.join(removed)}")
    return removed


@drill_task(
    rest="run",
    help={
        "run": "RUN: the run id (a unique prefix is enough), or the word after "
        "`drillbook resume`; without it, the runs left open are listed",
        "format": RUN_HELP["format"],
    },
)
def resume(c: Context, run: str | None = None, format: str = "text") -> None:
    """Continue an interrupted run from the step it stopped at; finished steps never repeat."""
    from drillbook.errors import InvalidInput, PreconditionFailed, UsageError
    from drillbook.release import release_flow
    from drillbook.runbook import load_runbook
    from drillbook.session import open_session
    from drillbook.tasks.release import release_plan

    console = run_console(format)
    if run is None and format == "json":
        # The list is for a person to choose from; a pipeline resumes the run it stopped.
        msg = "resume --format json needs RUN: the run to continue"
        hint = (
            "`drillbook resume` lists the runs left open; the JSON document of the run that "
            "stopped names it under `run`"
        )
        raise UsageError(msg, hint=hint)
    root = find_project_root()
    found_run = _unclosed_run(console, root, run, "resumed")
    if found_run is None:
        return
    info, events = found_run
    first = events[0] if events else {}
    _name_service(root, first)
    if first.get("event") != "run_started" or not isinstance(first.get("runbook"), str):
        # A crash leaves a torn last line, never a torn first one: this journal was cut short
        # at its start, or edited, and says neither what ran nor from which runbook.
        found = (
            "it is empty"
            if not events
            else f"its first event is {first.get('event')!r}"
            if first.get("event") != "run_started"
            else "it names no runbook"
        )
        msg = (
            f"the journal of run {info.run_id} does not start with a run_started event that "
            f"names its runbook ({found}), so what it ran is unknown; it cannot be resumed"
        )
        raise UsageError(
            msg,
            hint=(
                f"check {first.get('env') or 'the environment it ran on'}, then "
                f"`drillbook abandon {info.run_id}` closes it"
            ),
        )
    if first.get("action") != "release":
        msg = f"run {info.run_id} is a {first.get('action')}; only a release resumes step by step"
        raise UsageError(
            msg,
            hint=(
                f"`drillbook abandon {info.run_id}` closes it (and stops what it left "
                f"running); then run the {first.get('action')} again"
            ),
        )
    try:
        loaded = load_runbook(root / first["runbook"], root=root)
    except InvalidInput as exc:
        # Moved, deleted or broken since: what the run planned cannot be read back, so no
        # step of it can be trusted to continue.
        msg = (
            f"run {info.run_id} ran from the runbook {first['runbook']}, which cannot be read "
            f"now, so its plan is unknown; it cannot be resumed:\n{exc}"
        )
        raise UsageError(
            msg,
            hint=(
                f"put {first['runbook']} back as it was when the run started and resume; or "
                f"check {first.get('env') or 'the environment it ran on'}, then "
                f"`drillbook abandon {info.run_id}` and release again"
            ),
        ) from None
    if loaded.sha256 != first.get("runbook_sha256"):
        msg = (
            f"the runbook {first['runbook']} changed since run {info.run_id} started, so its "
            "plan may no longer be the one that was half run"
        )
        raise PreconditionFailed(
            msg,
            hint=(
                f"check {first.get('env')}, then `drillbook abandon {info.run_id}` "
                "and release again"
            ),
        )
    _require_resumable(info.run_id, first, events)
    _require_not_overtaken(root, info.run_id, first)
    done = frozenset(
        e["step"]
        for e in events
        if e.get("event") in ("step_finished", "step_skipped")
        and e.get("outcome", "ok") in ("ok", "done")
    ) | _done_before(first)
    params = first.get("params", {})
    # The old run is closed only once the new one holds the lock, after the preflight: a resume
    # that is refused leaves it as it was, resumable.
    release_, found, planned = release_plan(
        loaded, params.get("version"), first["env"], bool(params.get("push"))
    )
    if first.get("head") and found.head != first["head"]:
        msg = (
            f"HEAD moved since run {info.run_id} started: its finished steps judged "
            f"{first['head'][:9]}, HEAD is {found.head[:9]}; a resume would tag code they "
            "never saw"
        )
        raise PreconditionFailed(
            msg,
            hint=(
                f"`git checkout {first['head'][:9]}` and resume, or "
                f"`drillbook abandon {info.run_id}` and release again"
            ),
        )
    with open_session(
        loaded,
        action="release",
        env=first["env"],
        version=release_.version,
        console=console,
        extra={
            "params": params,
            "resumed_from": info.run_id,
            "previous": found.previous,
            # What the run it continues said: who owns the changes, how to undo them.
            **{key: first[key] for key in ("changes", "undo", "head") if key in first},
            # The steps it will skip, for the resume of this run if it is stopped before it
            # has journaled them one by one (while it stops what the old run left running).
            "done": sorted(done),
        },
        resuming=info.run_id,
    ) as session:
        stopped = _stop_leftovers(console, info.run_id, events)
        if stopped:
            session.event("leftovers_stopped", of_run=info.run_id, stopped=stopped)
        removed = _remove_temp_files(console, root, info.run_id, first)
        if removed:
            session.event("leftovers_removed", of_run=info.run_id, files=removed)
        console.print(f"resuming {info.run_id}: {len(done)} finished step(s) will not run again")
        outcome = release_flow(
            session,
            planned,
            release_,
            found,
            auto_rollback=params.get("auto_rollback", True),
            done=done,
        )
        finish(session, outcome, format)
    if outcome.exit_code:
        raise Exit(code=outcome.exit_code)


def _name_service(root: Path, first: dict[str, Any]) -> None:
    """The run's service, for the commands this task prints (see `drillbook.commands`)."""
    from drillbook.commands import name_service

    service = first.get("service")
    name_service(root, service if isinstance(service, str) else None)


def _require_not_overtaken(root: Path, run_id: str, first: dict[str, Any]) -> None:
    """Refuse to resume a release after another run deployed another version to its
    environment: the resume would deploy its own over it, or tag and note a release the
    environment no longer runs."""
    from drillbook.errors import PreconditionFailed
    from drillbook.state import deployed_since

    env = str(first.get("env", "staging"))
    version = first.get("version")
    since = deployed_since(root, env, run_id, service=first.get("service"))
    if since is None or since.get("version") == version:
        return
    msg = (
        f"since run {run_id} (release {version}) stopped, run {since.get('run')} deployed "
        f"{since.get('version')} to {env} at {since.get('ts')}: a resume would release "
        f"{version} over it"
    )
    raise PreconditionFailed(
        msg,
        hint=(
            f"`drillbook abandon {run_id}` closes it; then `drillbook release --version "
            f"{version}` if {version} is what {env} should run"
        ),
    )


def _done_before(first: dict[str, Any]) -> frozenset[str]:
    """The steps a resumed run found finished in the runs before it (its `done` field)."""
    done = first.get("done")
    if not isinstance(done, list):
        return frozenset()
    return frozenset(step for step in done if isinstance(step, str))


def _require_resumable(run_id: str, first: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """Refuse to resume a run that had failed: it was rolling back, or about to.

    Resuming runs the steps that did not finish; a check that failed and passes on a second
    try would then let a failed release be tagged, and a rollback cut short would be left
    half-done while the release went on.
    """
    from drillbook.errors import PreconditionFailed
    from drillbook.session import failed_release_advice

    advice = failed_release_advice(run_id, first, events)
    if advice is None:
        return
    what, hint = advice
    raise PreconditionFailed(
        f"run {run_id} {what} when it stopped: it cannot be resumed as a release", hint=hint
    )


@drill_task(
    rest="run",
    help={
        "run": "RUN: the run id (a unique prefix is enough), or the word after "
        "`drillbook abandon`; without it, the runs left open are listed"
    },
)
def abandon(c: Context, run: str | None = None) -> None:
    """Close an interrupted or unfinished run without continuing it."""
    from drillbook.journal import Journal, remove_unstarted_resumers
    from drillbook.session import require_still_open

    root = find_project_root()
    console = Console()
    found_run = _unclosed_run(console, root, run, "abandoned")
    if found_run is None:
        return
    info, events = found_run
    last_step = next((e.get("step") for e in reversed(events) if e.get("step")), None)
    first = events[0] if events else {}
    _name_service(root, first)
    # A run that looks unfinished may still be going: its lock says so (exit 75, naming it).
    from drillbook.lock import acquire_lock

    env = str(first.get("env", "staging"))
    with acquire_lock(root, env, f"abandon-{info.run_id}", argv=sys.argv) as held:
        if held.warning:
            # As every run that takes over a lock does: the person learns whose it was.
            console.error(f"warning: {held.warning}")
        require_still_open(root, info.run_id, "abandon", env)
        remove_unstarted_resumers(root, info.run_id)
        stopped = _stop_leftovers(console, info.run_id, events)
        removed = _remove_temp_files(console, root, info.run_id, first)
        undo = _undo_once_closed(root, events, last_step)
        with Journal.open(root, info.run_id) as old:
            old.write(
                "run_closed",
                how="abandoned",
                last_step=last_step,
                stopped=stopped or None,
                removed=removed or None,
                # The line says on its own what it closes, whom to ask and how to undo what the
                # run did, for a log store that sees it alone.
                **{k: first[k] for k in ("service", "env", "version", "owner") if k in first},
                **({"undo": undo} if undo else {}),
            )
    console.print(
        f"abandoned {info.run_id}; it stopped at {last_step or 'its start'}. "
        f"Check {first.get('env', 'the environment')} before the next release."
    )
    if undo:
        # What the run left is now the person's to undo; history says the same on its row.
        console.print(f"  undo: {undo}")


def _undo_once_closed(root: Path, events: list[dict[str, Any]], last_step: Any) -> str | None:
    """What `history` says undoes the run of `events` once it is abandoned; None when it says
    nothing (not a release, deploy, rollback or rehearsal) or cannot tell."""
    from drillbook.history import run_entry

    closing = {"event": "run_closed", "how": "abandoned", "last_step": last_step}
    try:
        entry = run_entry(root, [*events, closing])
    except Exception:  # a run is abandoned whatever its journal holds
        return None
    return entry.undo if entry is not None else None
