"""`plan`, `release`, `rollback`, `resume` and `abandon`: the whole checklist and its undo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from invoke import Context, Exit

from drillbook.console import Console
from drillbook.tasks._base import (
    RUN_HELP,
    drill_task,
    finish,
    project,
    require_format,
    run_console,
)

# --- plan and release -------------------------------------------------------------------------


def _release_plan(
    loaded: Any, version: str | None, env: str, push: bool, *, survey: bool = False
) -> tuple[Any, ...]:
    from drillbook.plan import plan_release
    from drillbook.release import pick_version, preflight, require_env

    release = pick_version(loaded.runbook, version)
    require_env(loaded.runbook, env)
    found = preflight(loaded, env, release.version, survey=survey, push=push)
    plan = plan_release(
        loaded.runbook,
        env=env,
        version=release.version,
        previous=found.previous,
        push=push,
        tag_exists_here=found.tag_done,
    )
    return release, found, plan


def _probes(loaded: Any, env: str, found: Any) -> list[tuple[str, str, bool]]:
    """Read-only probes for plan and --dry-run: git state, the tag, whether env answers."""
    probes = [
        *[("refused", problem.message, False) for problem in found.problems],
        ("git", f"HEAD at {found.head[:9]}", True),
        (
            "tag",
            f"{found.tag} on HEAD (done)"
            if found.tag_done
            else f"{found.tag} absent; it will be made on {found.head[:9]}",
            True,
        ),
        ("previous", found.previous or "none (first release)", True),
    ]
    ident = found.identity
    probes.append(("identity", f"{ident[0]} <{ident[1]}>" if ident else "missing", bool(ident)))
    url = loaded.runbook.environments[env].url
    probes.append((env, _answers(url), True))
    return probes


def _answers(url: str) -> str:
    """Whether something accepts connections at `url`: a TCP connect, never a request.

    A request would be a side effect on the service (a log line, a metric); a connect is not.
    """
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=2):
            return f"{url} accepts connections"
    except OSError as exc:
        return f"{url} does not answer ({exc.strerror or type(exc).__name__}); the deploy starts it"


@drill_task(help={**RUN_HELP, "push": "include pushing the tag"})
def plan(
    c: Context,
    version: str | None = None,
    env: str = "staging",
    push: bool = False,
    service: str | None = None,
    format: str = "text",
) -> None:
    """Print every step `release` would run, marking those that change something."""

    require_format(format)
    loaded = project(service)
    _, found, planned = _release_plan(loaded, version, env, push, survey=True)
    _show_plan(Console(), loaded, env, planned, found, format)


def _show_plan(
    console: Console, loaded: Any, env: str, planned: Any, found: Any, format: str
) -> None:
    """Print a plan with its probes; exit 3 after it when something would refuse the run."""
    from drillbook.output import plan_json, print_plan

    probes = _probes(loaded, env, found)
    if format == "json":
        print(json.dumps(plan_json(planned, probes), indent=2), flush=True)
    else:
        print_plan(console, planned, probes)
    if found.problems:
        first = found.problems[0]
        count = len(found.problems)
        more = f" (and {count - 1} more above)" if count > 1 else ""
        first.message = f"the release would be refused: {first.message}{more}"
        raise first
    if format != "json":
        console.print("nothing was changed: a plan runs only read-only probes")


@drill_task(
    help={
        **RUN_HELP,
        "dry_run": "print the plan and run only read-only probes",
        "yes": "do not ask before releasing to an environment other than staging",
        "push": "push the tag to origin at the end",
        "no_auto_rollback": "on a failure after the deploy, leave the environment as it is",
    }
)
def release(
    c: Context,
    version: str | None = None,
    env: str = "staging",
    dry_run: bool = False,
    yes: bool = False,
    push: bool = False,
    no_auto_rollback: bool = False,
    service: str | None = None,
    format: str = "text",
) -> None:
    """Run the whole checklist in order, stopping at the first failure; roll back on its own."""
    from drillbook.release import release_flow
    from drillbook.session import open_session
    from drillbook.state import current_version, finished_release

    console = run_console(format)
    loaded = project(service)
    release_, found, planned = _release_plan(loaded, version, env, push, survey=dry_run)
    if dry_run:
        _show_plan(console, loaded, env, planned, found, format)
        return
    _confirm(env, yes)
    done = finished_release(loaded.root, env, release_.version, loaded.sha256)
    note = loaded.root / "notes" / f"{loaded.runbook.service}-{release_.version}-rollback.md"
    if (
        done is not None
        and found.tag_done
        and note.is_file()
        and current_version(loaded.root, env) == release_.version
        and not push
    ):
        console.print(
            f"release {release_.version} of {loaded.runbook.service} is already done on {env} "
            f"(run {done.get('run')}, {done.get('ts')}): tag {found.tag} on HEAD, "
            f"{env} runs {release_.version}, note {note.relative_to(loaded.root)}. Nothing changed."
        )
        if format == "json":
            print(json.dumps({"outcome": "already_done", "exit": 0, "run": done.get("run")}))
        return
    params = {
        "params": {
            "version": release_.version,
            "push": push,
            "auto_rollback": not no_auto_rollback,
        },
        "previous": found.previous,
        "changes": [
            {"change": ch.id, "title": ch.title, "owner": ch.owner, "rollback": ch.rollback.text}
            for ch in release_.changes
        ],
        "undo": f"drillbook rollback --env {env}"
        + (f" --to {found.previous}" if found.previous else ""),
    }
    with open_session(
        loaded, action="release", env=env, version=release_.version, console=console, extra=params
    ) as session:
        outcome = release_flow(
            session, planned, release_, found, auto_rollback=not no_auto_rollback
        )
        finish(session, outcome, format)
    if outcome.exit_code:
        raise Exit(code=outcome.exit_code)


def _confirm(env: str, yes: bool) -> None:
    import sys

    from drillbook.errors import UsageError

    if env == "staging" or yes:
        return
    if not sys.stdin.isatty():
        msg = f"releasing to {env} needs confirmation, and there is no terminal to ask"
        raise UsageError(msg, hint="pass --yes to confirm")
    answer = input(f"release to {env}? type the environment's name to go on: ")
    if answer.strip() != env:
        msg = f"not confirmed (expected {env!r}); nothing ran"
        raise UsageError(msg)


@drill_task(
    help={
        "env": "the environment to roll back",
        "to": "the version to go back to (default: the one before the current)",
        "service": RUN_HELP["service"],
        "format": RUN_HELP["format"],
    }
)
def rollback(
    c: Context,
    env: str = "staging",
    to: str | None = None,
    service: str | None = None,
    format: str = "text",
) -> None:
    """Roll back for real: the changes' rollback steps, the redeploy, the rollback checks."""
    from drillbook.errors import EXIT_ROLLBACK_FAILED, UsageError
    from drillbook.execute import Executor
    from drillbook.release import Outcome, previous_version, require_env, run_rollback
    from drillbook.session import open_session
    from drillbook.state import current_version

    console = run_console(format)
    loaded = project(service)
    runbook = loaded.runbook
    require_env(runbook, env)
    current = current_version(loaded.root, env)
    if current is None:
        msg = f"the journal has no deploy to {env}, so the current version is unknown"
        raise UsageError(msg, hint="say where to go with --to VERSION")
    target = to or previous_version(loaded.root, runbook, current)
    if target is None:
        msg = f"{env} runs {current} and no released version below it was found in git tags"
        raise UsageError(msg, hint="say where to go with --to VERSION")
    if to is not None:
        _require_rollback_target(loaded, env, current, to)
    release_ = runbook.release(current)
    with open_session(
        loaded,
        action="rollback",
        env=env,
        version=current,
        console=console,
        extra={"to_version": target},
    ) as session:
        executor = Executor(session, total=0)
        session.results = executor.results
        ok, results = run_rollback(
            session,
            executor,
            release_,
            from_version=current,
            target=target,
            reason="requested by hand",
        )
        if ok:
            outcome = Outcome(
                0,
                "ok",
                f"{env} rolled back from {current} to {target}; the rollback checks pass",
                rollback=results,
            )
        else:
            outcome = Outcome(
                EXIT_ROLLBACK_FAILED,
                "rollback_failed",
                f"the rollback of {env} from {current} to {target} failed: a person must act",
                failed=results[-1] if results else None,
                rollback=results,
            )
        finish(session, outcome, format)
    if outcome.exit_code:
        raise Exit(code=outcome.exit_code)


def _require_rollback_target(loaded: Any, env: str, current: str, to: str) -> None:
    """Refuse a `--to` that is not a released version below the one `env` runs.

    On the worst day a typo (`--to 1.1.1` for 1.1.0) must not deploy a version nobody
    released, and a version above the current one is a release, with its gates and checks.
    """
    from drillbook import gitops
    from drillbook.errors import UsageError
    from drillbook.versions import is_semver, semver_key

    runbook = loaded.runbook
    if not is_semver(to):
        msg = f"--to expects a semver version such as 1.2.0, got {to!r}"
        raise UsageError(msg)
    if semver_key(to) >= semver_key(current):
        msg = f"{env} runs {current}; --to {to} is not below it, and a rollback goes back"
        hint = (
            f"to go forward, release it: drillbook release --version {to} --env {env} "
            "(its gates and checks run)"
        )
        raise UsageError(msg, hint=hint)
    state = gitops.look(loaded.root)
    if state.tag_commit(runbook.tag_name(to)) is None:
        released = sorted(
            (
                v
                for v in _tagged_versions(state, runbook.tag)
                if semver_key(v) < semver_key(current)
            ),
            key=semver_key,
        )
        known = ", ".join(released[-5:]) or "none"
        msg = (
            f"{to} was never released: expected a tag {runbook.tag_name(to)}, found none "
            f"(released below {current}: {known})"
        )
        raise UsageError(msg, hint="check the version; `drillbook history` lists what was deployed")


def _tagged_versions(state: Any, tag_format: str) -> list[str]:
    """The versions that have a tag of the runbook's format."""
    import re

    from drillbook.versions import is_semver

    prefix, suffix = tag_format.split("{version}")
    pattern = re.compile(re.escape(prefix) + "(.+)" + re.escape(suffix))
    found = (pattern.fullmatch(name) for name in state.tags)
    return [m.group(1) for m in found if m and is_semver(m.group(1))]


# --- resume and abandon -----------------------------------------------------------------------


def _find_run(root: Path, run: str) -> Any:
    from drillbook.errors import UsageError
    from drillbook.journal import list_runs

    runs = list_runs(root)
    matches = [r for r in runs if r.run_id == run or r.run_id.startswith(run)]
    if len(matches) != 1:
        recent = ", ".join(r.run_id for r in runs[:5]) or "none"
        what = "no run" if not matches else f"{len(matches)} runs"
        msg = f"{what} matching {run!r} in .drillbook/journal (recent: {recent})"
        raise UsageError(msg)
    return matches[0]


def _run_state(info: Any) -> tuple[str, list[dict[str, Any]]]:
    """open (killed), interrupted, closed or finished; and the events."""
    from drillbook.journal import read_journal

    events = read_journal(info.path).events
    if any(e.get("event") == "run_closed" for e in events):
        return "closed", events
    finished = [e for e in events if e.get("event") == "run_finished"]
    if not finished:
        return "open", events
    if finished[-1].get("outcome") == "interrupted":
        return "interrupted", events
    return "finished", events


def _list_resumable(console: Console, root: Path) -> None:
    from drillbook.journal import list_runs
    from drillbook.session import describe_leftovers, leftovers_of

    found = False
    for info in list_runs(root):
        state, events = _run_state(info)
        if state in ("open", "interrupted"):
            first = events[0] if events else {}
            last = events[-1] if events else {}
            running = describe_leftovers(first, leftovers_of(first, events)) if first else ""
            console.print(
                f"{info.run_id}  {state:<11} {first.get('action', '?')} "
                f"{first.get('version') or ''} on {first.get('env', '?')}, "
                f"last: {last.get('event')} {last.get('step') or ''}{running}"
            )
            found = True
    if not found:
        console.print("no interrupted or unfinished runs")


def _unclosed_run(
    console: Console, root: Path, run: str | None, what: str
) -> tuple[Any, list[dict[str, Any]]] | None:
    """The run to resume or abandon and its events; without RUN, list the candidates."""
    from drillbook.errors import UsageError

    if run is None:
        _list_resumable(console, root)
        return None
    info = _find_run(root, run)
    state, events = _run_state(info)
    if state not in ("open", "interrupted"):
        msg = f"run {info.run_id} is {state}; only an interrupted or unfinished run can be {what}"
        raise UsageError(msg)
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


@drill_task(rest="run", help={"run": "the run id (a unique prefix is enough)"})
def resume(c: Context, run: str | None = None) -> None:
    """Continue an interrupted run from the step it stopped at; finished steps never repeat."""
    from drillbook.errors import PreconditionFailed, UsageError
    from drillbook.release import release_flow
    from drillbook.runbook import load_runbook
    from drillbook.session import open_session

    root = Path.cwd()
    console = Console()
    found_run = _unclosed_run(console, root, run, "resumed")
    if found_run is None:
        return
    info, events = found_run
    first = events[0]
    if first.get("action") != "release":
        msg = f"run {info.run_id} is a {first.get('action')}; only a release resumes step by step"
        raise UsageError(
            msg, hint=f"run the {first.get('action')} again, then `drillbook abandon {info.run_id}`"
        )
    loaded = load_runbook(root / first["runbook"], root=root)
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
    done = frozenset(
        e["step"]
        for e in events
        if e.get("event") in ("step_finished", "step_skipped")
        and e.get("outcome", "ok") in ("ok", "done")
    )
    params = first.get("params", {})
    # The old run is closed only once the new one holds the lock, after the preflight: a resume
    # that is refused leaves it as it was, resumable.
    release_, found, planned = _release_plan(
        loaded, params.get("version"), first["env"], bool(params.get("push"))
    )
    with open_session(
        loaded,
        action="release",
        env=first["env"],
        version=release_.version,
        console=console,
        extra={"params": params, "resumed_from": info.run_id, "previous": found.previous},
        resuming=info.run_id,
    ) as session:
        stopped = _stop_leftovers(console, info.run_id, events)
        if stopped:
            session.event("leftovers_stopped", of_run=info.run_id, stopped=stopped)
        console.print(f"resuming {info.run_id}: {len(done)} finished step(s) will not run again")
        outcome = release_flow(
            session,
            planned,
            release_,
            found,
            auto_rollback=params.get("auto_rollback", True),
            done=done,
        )
        finish(session, outcome, "text")
    if outcome.exit_code:
        raise Exit(code=outcome.exit_code)


@drill_task(rest="run", help={"run": "the run id (a unique prefix is enough)"})
def abandon(c: Context, run: str | None = None) -> None:
    """Close an interrupted or unfinished run without continuing it."""
    from drillbook.journal import Journal

    root = Path.cwd()
    console = Console()
    found_run = _unclosed_run(console, root, run, "abandoned")
    if found_run is None:
        return
    info, events = found_run
    last_step = next((e.get("step") for e in reversed(events) if e.get("step")), None)
    first = events[0] if events else {}
    # A run that looks unfinished may still be going: its lock says so (exit 75, naming it).
    from drillbook.lock import acquire_lock

    env = str(first.get("env", "staging"))
    with acquire_lock(root, env, f"abandon-{info.run_id}"):
        stopped = _stop_leftovers(console, info.run_id, events)
        with Journal.open(root, info.run_id) as old:
            old.write("run_closed", how="abandoned", last_step=last_step, stopped=stopped or None)
    console.print(
        f"abandoned {info.run_id}; it stopped at {last_step or 'its start'}. "
        f"Check {first.get('env', 'the environment')} before the next release."
    )
