"""drillbook's invoke tasks: the only layer that prints and chooses exit codes.

A project's own `tasks.py` exposes these with `from drillbook.tasks import namespace`; the
`drillbook` console script runs the same collection. Task bodies import the library lazily so
that `drillbook --help` stays as quick as importing invoke.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke import Collection, Context, Exit, task

from drillbook.cli import REST_ATTRIBUTE
from drillbook.console import Console
from drillbook.errors import EXIT_INVALID, DrillbookError, InvalidInput

F = TypeVar("F", bound=Callable[..., Any])


def drill_task(*, rest: str | None = None, **options: Any) -> Callable[[F], Any]:
    """An invoke task whose DrillbookErrors become a clear message and the right exit code."""

    def wrap(fn: F) -> Any:
        @functools.wraps(fn)
        def body(c: Context, *args: Any, **kwargs: Any) -> Any:
            name = fn.__name__.replace("_", "-")
            try:
                return fn(c, *args, **kwargs)
            except DrillbookError as exc:
                report_error(exc, task_name=name)
                raise Exit(code=exc.exit_code) from None
            except (Exit, KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                # A bug, not an input problem; the traceback helps only the maintainers.
                if os.environ.get("DRILLBOOK_DEBUG"):
                    raise
                Console().error(
                    f"drillbook {name}: internal error: {type(exc).__name__}: {exc}\n"
                    "  hint: this is a bug in drillbook; run again with DRILLBOOK_DEBUG=1 for "
                    "the traceback and report it"
                )
                raise Exit(code=EXIT_INVALID) from None

        if rest is not None:
            setattr(body, REST_ATTRIBUTE, rest)
        return task(**options)(body)

    return wrap


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
    try:
        from drillbook.secrets import Masker
    except ImportError:  # only while the package is half-installed
        return None
    return Masker.from_environ()


# --- check ------------------------------------------------------------------------------------


@drill_task(
    rest="path",
    iterable=["path"],
    help={
        "path": "a runbook file or a folder of them (repeatable; default: runbooks/)",
        "format": "text (default) or json",
    },
)
def check(c: Context, path: list[str] | None = None, format: str = "text") -> None:
    """Validate runbooks: every problem with FILE:LINE:COLUMN, exit 2 if any."""
    from drillbook.runbook import find_runbook_files, load_runbook

    _require_format(format)
    console = Console()
    targets = [Path(p) for p in path] if path else [Path("runbooks")]
    files = find_runbook_files(targets)
    results: list[dict[str, Any]] = []
    for file in files:
        try:
            loaded = load_runbook(file)
        except InvalidInput as exc:
            results.append(
                {
                    "file": str(file),
                    "valid": False,
                    "service": None,
                    "problems": [p.as_dict() for p in exc.problems],
                    "_problems": exc.problems,
                }
            )
            continue
        rb = loaded.runbook
        results.append(
            {
                "file": str(file),
                "valid": True,
                "service": rb.service,
                "releases": [r.version for r in rb.releases],
                "problems": [],
            }
        )
    invalid = [r for r in results if not r["valid"]]
    problems = sum(len(r["problems"]) for r in results)
    summary = (
        f"{len(results)} runbook{'s' if len(results) != 1 else ''} checked: "
        f"{len(results) - len(invalid)} valid, {len(invalid)} invalid"
        + (f" ({problems} problem{'s' if problems != 1 else ''})" if problems else "")
    )
    if format == "json":
        payload = {
            "ok": not invalid,
            "checked": len(results),
            "valid": len(results) - len(invalid),
            "invalid": len(invalid),
            "files": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results],
            "summary": summary,
        }
        console.print(json.dumps(payload, indent=2))
    else:
        for result in results:
            if result["valid"]:
                releases = ", ".join(result["releases"]) or "no releases"
                console.print(
                    f"{console.paint('ok', 'green')}   {result['file']} "
                    f"({result['service']}; {releases})"
                )
            else:
                for problem in result["_problems"]:
                    console.print(str(problem))
        console.print(summary, style="bold" if not invalid else "red")
    if invalid:
        raise Exit(code=InvalidInput.exit_code)


def _require_format(value: str) -> None:
    from drillbook.errors import UsageError

    if value not in ("text", "json"):
        msg = f"--format expects text or json, got {value!r}"
        raise UsageError(msg)


# --- schema -----------------------------------------------------------------------------------


@drill_task(help={"out": "where to write the schema (default: print it)"})
def schema(c: Context, out: str | None = None) -> None:
    """Print (or write) the JSON Schema of the runbook format, generated from the model."""
    from drillbook.model import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
    if out is None:
        Console().print(text.rstrip("\n"))
        return
    from drillbook.files import write_atomic

    write_atomic(Path(out), text)
    Console().print(f"wrote {out}")


# --- shared helpers of the run tasks --------------------------------------------------------


def _project(service: str | None = None) -> Any:
    from drillbook.runbook import load_project_runbook

    return load_project_runbook(Path.cwd(), service)


def _console(format: str) -> Console:
    import sys

    _require_format(format)
    # With --format json, stdout carries only the JSON; progress goes to stderr.
    return Console(out=sys.stderr if format == "json" else None)


def _finish(session: Any, outcome: Any, format: str) -> None:
    from drillbook.output import print_digest, summary_json

    session.outcome = outcome.outcome
    session.exit_code = outcome.exit_code
    console = session.console
    if outcome.exit_code != 0:
        print_digest(session, outcome)
    else:
        console.print(console.paint(outcome.headline, "green"))
        for name, value in outcome.artifacts.items():
            console.print(f"  {name}: {value}")
        console.print(f"  journal: .drillbook/journal/{session.run_id}.jsonl")
    if format == "json":
        print(summary_json(session, outcome), flush=True)


_RUN_HELP = {
    "env": "the environment (default: staging)",
    "version": "the release version (default: the newest in the runbook)",
    "service": "which runbook, when runbooks/ holds several",
    "format": "text (default) or json (a summary on stdout for CI)",
}


# --- plan and release -------------------------------------------------------------------------


def _release_plan(loaded: Any, version: str | None, env: str, push: bool) -> tuple[Any, ...]:
    from drillbook.plan import plan_release
    from drillbook.release import pick_version, preflight, require_env

    release = pick_version(loaded.runbook, version)
    require_env(loaded.runbook, env)
    found = preflight(loaded, env, release.version)
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
    from drillbook import gitops

    probes = [
        ("git", f"clean tree at {found.head[:9]}", True),
        (
            "tag",
            f"{found.tag} on HEAD (done)"
            if found.tag_done
            else f"{found.tag} absent; it will be made on {found.head[:9]}",
            True,
        ),
        ("previous", found.previous or "none (first release)", True),
    ]
    ident = gitops.identity(loaded.root)
    probes.append(("identity", f"{ident[0]} <{ident[1]}>" if ident else "missing", bool(ident)))
    url = loaded.runbook.environments[env].url
    try:
        import requests

        response = requests.get(url, timeout=(2, 3), allow_redirects=False)
        probes.append((env, f"{url} answers {response.status_code}", True))
    except Exception as exc:
        probes.append(
            (env, f"{url} does not answer ({type(exc).__name__}); deploy starts it", True)
        )
    return probes


@drill_task(help={**_RUN_HELP, "push": "include pushing the tag"})
def plan(
    c: Context,
    version: str | None = None,
    env: str = "staging",
    push: bool = False,
    service: str | None = None,
    format: str = "text",
) -> None:
    """Print every step `release` would run, marking those that change something."""
    from drillbook.output import plan_json, print_plan

    console = Console()
    _require_format(format)
    loaded = _project(service)
    _, found, planned = _release_plan(loaded, version, env, push)
    probes = _probes(loaded, env, found)
    if format == "json":
        console.print(json.dumps(plan_json(planned, probes), indent=2))
    else:
        print_plan(console, planned, probes)


@drill_task(
    help={
        **_RUN_HELP,
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
    from drillbook.output import plan_json, print_plan
    from drillbook.release import release_flow
    from drillbook.session import open_session
    from drillbook.state import current_version, finished_release

    console = _console(format)
    loaded = _project(service)
    release_, found, planned = _release_plan(loaded, version, env, push)
    if dry_run:
        probes = _probes(loaded, env, found)
        if format == "json":
            print(json.dumps(plan_json(planned, probes), indent=2))
        else:
            print_plan(console, planned, probes)
            console.print("dry run: nothing was changed")
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
            {"change": ch.id, "title": ch.title, "owner": ch.owner, "rollback": ch.rollback.summary}
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
        _finish(session, outcome, format)
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


# --- single steps -----------------------------------------------------------------------------


def _gate(gate: str, service: str | None) -> None:
    from drillbook.errors import CheckFailed, UsageError
    from drillbook.execute import Executor
    from drillbook.plan import PlannedStep, command_of, placeholders
    from drillbook.session import open_session

    loaded = _project(service)
    spec = getattr(loaded.runbook.gates, gate)
    if spec is None:
        msg = f"the runbook turns the {gate} gate off (gates.{gate}: null)"
        raise UsageError(msg)
    values = placeholders(loaded.runbook, "staging", None, None)
    argv = command_of(spec, values)
    step = PlannedStep(gate, "gate", f"{gate}: {' '.join(argv)}", changes=False, argv=argv)
    with open_session(
        loaded, action=gate, env="staging", version=None, changes_world=False, lock=False
    ) as session:
        result = Executor(session, total=1).command(step, spec, version=None, previous=None)
        session.outcome = "ok" if result.ok else "failed"
        session.exit_code = 0 if result.ok else 1
    if not result.ok:
        msg = f"the {gate} gate failed: {result.detail}"
        raise CheckFailed(msg, hint="fix what it reports, then run it again")


@drill_task(help={"service": _RUN_HELP["service"]})
def lint(c: Context, service: str | None = None) -> None:
    """Run the lint gate of the runbook (default: ruff check .)."""
    _gate("lint", service)


@drill_task(help={"service": _RUN_HELP["service"]})
def unit(c: Context, service: str | None = None) -> None:
    """Run the unit-test gate of the runbook (default: pytest -q)."""
    _gate("unit", service)


@drill_task(
    name="verify-config",
    help={
        "env": "the environment whose config file to check",
        "service": _RUN_HELP["service"],
        "format": _RUN_HELP["format"],
    },
)
def verify_config(
    c: Context,
    env: str = "staging",
    service: str | None = None,
    format: str = "text",
) -> None:
    """Check an environment's config file: the rules, drift against same_keys_as, secrets set."""
    from drillbook.configcheck import format_finding
    from drillbook.configcheck import verify_config as verify
    from drillbook.errors import CheckFailed
    from drillbook.release import require_env
    from drillbook.session import masker_for

    _require_format(format)
    loaded = _project(service)
    require_env(loaded.runbook, env)
    masker = masker_for(loaded)
    console = Console(masker=masker)
    report = verify(loaded.runbook, env, loaded.root)
    if format == "json":
        payload = {
            "env": env,
            "path": report.path,
            "ok": report.ok,
            "findings": [
                {
                    "key": f.key,
                    "outcome": f.outcome,
                    "rule": f.rule,
                    "expected": f.expected,
                    "got": f.got,
                    "line": f.line,
                }
                for f in report.findings
            ],
        }
        console.print(json.dumps(masker.mask_obj(payload), indent=2))
    else:
        for finding in report.findings:
            console.print(f"{console.outcome(finding.outcome)} {format_finding(finding)}")
        fails = len(report.failures)
        console.print(
            f"{report.path}: {len(report.findings) - fails} pass, {fails} fail",
            style="green" if report.ok else "red",
        )
    if not report.ok:
        raise Exit(code=CheckFailed.exit_code)


@drill_task(
    help={"env": _RUN_HELP["env"], "service": _RUN_HELP["service"], "version": "the version"}
)
def deploy(c: Context, version: str, env: str = "staging", service: str | None = None) -> None:
    """Deploy one version to an environment, with its journal."""
    from drillbook.errors import StepFailed, UsageError
    from drillbook.execute import Executor
    from drillbook.plan import PlannedStep, command_of, placeholders
    from drillbook.release import previous_version, require_env
    from drillbook.session import open_session

    loaded = _project(service)
    runbook = loaded.runbook
    require_env(runbook, env)
    if runbook.deploy is None:
        raise UsageError("the runbook has no `deploy:` command")
    previous = previous_version(loaded.root, runbook, version)
    argv = command_of(runbook.deploy, placeholders(runbook, env, version, previous))
    step = PlannedStep("deploy", "deploy", f"deploy {version} to {env}", changes=True, argv=argv)
    with open_session(loaded, action="deploy", env=env, version=version) as session:
        result = Executor(session, total=1).command(
            step, runbook.deploy, version=version, previous=previous
        )
        if result.ok:
            session.event("deployed", version=version, previous=previous, by="deploy")
        session.outcome = "ok" if result.ok else "failed"
        session.exit_code = 0 if result.ok else 1
    if not result.ok:
        msg = f"deploy of {version} to {env} failed: {result.detail}"
        raise StepFailed(msg, hint=f"{env} may be half-deployed; look at the output above")


@drill_task(help={**_RUN_HELP, "version": "the version whose expected checks to run"})
def integration(
    c: Context,
    version: str | None = None,
    env: str = "staging",
    service: str | None = None,
    format: str = "text",
) -> None:
    """Run the expected checks of a version against an environment."""
    from drillbook.errors import CheckFailed
    from drillbook.execute import Executor
    from drillbook.plan import PlannedStep
    from drillbook.release import expected_items, pick_version, previous_version, require_env
    from drillbook.session import open_session

    console = _console(format)
    loaded = _project(service)
    release_ = pick_version(loaded.runbook, version)
    require_env(loaded.runbook, env)
    previous = previous_version(loaded.root, loaded.runbook, release_.version)
    items = expected_items(loaded.runbook, release_)
    step = PlannedStep(
        "integration", "checks", f"expected checks of {release_.version} on {env}", changes=False
    )
    with open_session(
        loaded,
        action="integration",
        env=env,
        version=release_.version,
        console=console,
        changes_world=False,
        lock=False,
    ) as session:
        result = Executor(session, total=1).checks(
            step, items, version=release_.version, previous=previous
        )
        session.outcome = "ok" if result.ok else "failed"
        session.exit_code = 0 if result.ok else 1
        if format == "json":
            print(
                json.dumps(
                    session.masker.mask_obj(
                        {"ok": result.ok, "checks": [r.as_dict() for r in result.checks]}
                    ),
                    indent=2,
                )
            )
    if not result.ok:
        msg = f"{result.detail} on {env} for {release_.version}"
        raise CheckFailed(msg)


@drill_task(
    help={
        "version": "the version to tag",
        "push": "push the tag to origin",
        "service": _RUN_HELP["service"],
    }
)
def tag(
    c: Context, version: str | None = None, push: bool = False, service: str | None = None
) -> None:
    """Make the annotated tag of a version: its changes, owners and rollback summary."""
    from drillbook import gitops
    from drillbook.errors import StepFailed
    from drillbook.release import pick_version, preflight, tag_message

    console = Console()
    loaded = _project(service)
    release_ = pick_version(loaded.runbook, version)
    found = preflight(loaded, "staging", release_.version)
    state = gitops.create_tag(
        loaded.root, found.tag, tag_message(loaded.runbook, release_, found.previous)
    )
    commit = gitops.tag_commit(loaded.root, found.tag) or ""
    if state == "exists":
        console.print(f"{found.tag} already on {commit[:9]} (HEAD): done")
    else:
        console.print(f"created {found.tag} on {commit[:9]}")
    if push:
        pushed = gitops.push_tag(loaded.root, found.tag)
        if not pushed.ok:
            msg = f"push of {found.tag} failed; the tag stays local: {pushed.detail}"
            raise StepFailed(
                msg,
                hint="run `drillbook tag --push` again once the remote is reachable (retry safe)",
            )
        console.print(f"pushed {found.tag}")


@drill_task(
    name="rollback-note",
    help={
        "version": "the version whose rollback note to write",
        "env": "the environment it goes to (default: staging)",
        "service": _RUN_HELP["service"],
    },
)
def rollback_note(
    c: Context, version: str | None = None, env: str = "staging", service: str | None = None
) -> None:
    """Render the rollback note of a version to notes/ (atomically)."""
    from drillbook.release import pick_version, previous_version, require_env, write_note
    from drillbook.session import open_session

    loaded = _project(service)
    release_ = pick_version(loaded.runbook, version)
    require_env(loaded.runbook, env)
    previous = previous_version(loaded.root, loaded.runbook, release_.version)
    with open_session(
        loaded,
        action="rollback-note",
        env=env,
        version=release_.version,
        changes_world=False,
        lock=False,
    ) as session:
        path = write_note(session, release_, previous, loaded.runbook.tag_name(release_.version))
        session.event("note_written", path=str(path.relative_to(loaded.root)))
        session.outcome, session.exit_code = "ok", 0
        session.console.print(f"wrote {path.relative_to(loaded.root)}")


@drill_task(
    help={
        "env": "the environment to roll back",
        "to": "the version to go back to (default: the one before the current)",
        "service": _RUN_HELP["service"],
        "format": _RUN_HELP["format"],
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

    console = _console(format)
    loaded = _project(service)
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
        _finish(session, outcome, format)
    if outcome.exit_code:
        raise Exit(code=outcome.exit_code)


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

    found = False
    for info in list_runs(root):
        state, events = _run_state(info)
        if state in ("open", "interrupted"):
            first = events[0] if events else {}
            last = events[-1] if events else {}
            console.print(
                f"{info.run_id}  {state:<11} {first.get('action', '?')} "
                f"{first.get('version') or ''} on {first.get('env', '?')}, "
                f"last: {last.get('event')} {last.get('step') or ''}"
            )
            found = True
    if not found:
        console.print("no interrupted or unfinished runs")


@drill_task(rest="run", help={"run": "the run id (a unique prefix is enough)"})
def resume(c: Context, run: str | None = None) -> None:
    """Continue an interrupted run from the step it stopped at; finished steps never repeat."""
    from drillbook.errors import PreconditionFailed, UsageError
    from drillbook.release import release_flow
    from drillbook.runbook import load_runbook
    from drillbook.session import open_session

    root = Path.cwd()
    console = Console()
    if run is None:
        _list_resumable(console, root)
        return
    info = _find_run(root, run)
    state, events = _run_state(info)
    if state not in ("open", "interrupted"):
        msg = f"run {info.run_id} is {state}; only an interrupted or unfinished run can be resumed"
        raise UsageError(msg)
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
    from drillbook.journal import Journal

    with Journal.open(root, info.run_id) as old:
        old.write("run_closed", how="resumed", by=None)
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
    ) as session:
        console.print(f"resuming {info.run_id}: {len(done)} finished step(s) will not run again")
        outcome = release_flow(
            session,
            planned,
            release_,
            found,
            auto_rollback=params.get("auto_rollback", True),
            done=done,
        )
        _finish(session, outcome, "text")
    if outcome.exit_code:
        raise Exit(code=outcome.exit_code)


@drill_task(rest="run", help={"run": "the run id (a unique prefix is enough)"})
def abandon(c: Context, run: str | None = None) -> None:
    """Close an interrupted or unfinished run without continuing it."""
    from drillbook.errors import UsageError
    from drillbook.journal import Journal

    root = Path.cwd()
    console = Console()
    if run is None:
        _list_resumable(console, root)
        return
    info = _find_run(root, run)
    state, events = _run_state(info)
    if state not in ("open", "interrupted"):
        msg = f"run {info.run_id} is {state}; there is nothing to abandon"
        raise UsageError(msg)
    last_step = next((e.get("step") for e in reversed(events) if e.get("step")), None)
    with Journal.open(root, info.run_id) as old:
        old.write("run_closed", how="abandoned", last_step=last_step)
    first = events[0] if events else {}
    console.print(
        f"abandoned {info.run_id}; it stopped at {last_step or 'its start'}. "
        f"Check {first.get('env', 'the environment')} before the next release."
    )


namespace = Collection(
    check,
    resume,
    abandon,
    schema,
    plan,
    release,
    lint,
    unit,
    verify_config,
    deploy,
    integration,
    tag,
    rollback_note,
    rollback,
)
