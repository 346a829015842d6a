"""The checklist's single steps: gates, verify-config, deploy, integration, tag, note."""

from __future__ import annotations

import json
import signal
from typing import Any

from invoke import Context

from drillbook.console import Console
from drillbook.tasks._base import (
    RUN_HELP,
    confirm_env,
    drill_task,
    emit_json,
    project,
    require_format,
    run_console,
)

# --- single steps -----------------------------------------------------------------------------


def _gate(gate: str, service: str | None) -> None:
    from drillbook.errors import CheckFailed, UsageError
    from drillbook.execute import Executor
    from drillbook.plan import PlannedStep, command_of, placeholders
    from drillbook.session import open_session

    loaded = project(service)
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


@drill_task(help={"service": RUN_HELP["service"]})
def lint(c: Context, service: str | None = None) -> None:
    """Run the lint gate of the runbook (default: ruff check .)."""
    _gate("lint", service)


@drill_task(help={"service": RUN_HELP["service"]})
def unit(c: Context, service: str | None = None) -> None:
    """Run the unit-test gate of the runbook (default: pytest -q)."""
    _gate("unit", service)


@drill_task(
    name="verify-config",
    help={
        "env": "the environment whose config file to check (default: staging)",
        "service": RUN_HELP["service"],
        "format": RUN_HELP["format"],
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

    require_format(format)
    loaded = project(service)
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
                    # A drift finding's line is in the other environment's file.
                    "file": f.file,
                    "line": f.line,
                }
                for f in report.findings
            ],
        }
        emit_json(json.dumps(masker.mask_obj(payload), indent=2), console)
    else:
        for finding in report.findings:
            console.print(f"{console.outcome(finding.outcome)} {format_finding(finding)}")
        fails = len(report.failures)
        console.print(
            f"{report.path}: {len(report.findings) - fails} pass, {fails} fail",
            style="green" if report.ok else "red",
        )
    if not report.ok:
        keys = list(dict.fromkeys(f.key for f in report.failures))
        more = f" and {len(keys) - 5} more keys" if len(keys) > 5 else ""
        count = len(report.failures)
        msg = (
            f"{count} config rule{'s' if count != 1 else ''} failed in {report.path} for "
            f"{env}: {', '.join(keys[:5])}{more}"
        )
        hint = (
            f"correct {report.path} (or the rules under `config:` in the runbook) as each "
            "failure says, then run verify-config again; it only reads"
        )
        raise CheckFailed(msg, hint=hint)


@drill_task(
    help={
        "env": RUN_HELP["env"],
        "service": RUN_HELP["service"],
        "version": "the version to deploy (required)",
        "yes": "do not ask before deploying to an environment other than staging",
        "format": RUN_HELP["format"],
    }
)
def deploy(
    c: Context,
    version: str | None = None,
    env: str = "staging",
    service: str | None = None,
    yes: bool = False,
    format: str = "text",
) -> None:
    """Deploy one version to an environment, with its journal."""
    from drillbook.errors import StepFailed, UsageError
    from drillbook.execute import Executor
    from drillbook.output import summary_json
    from drillbook.plan import PlannedStep, command_of, placeholders
    from drillbook.release import Outcome, previous_version, require_env
    from drillbook.session import open_session

    console = run_console(format)
    # An option rather than a required positional: invoke would take `--help` as its value.
    if version is None:
        msg = "deploy needs --version VERSION"
        raise UsageError(msg, hint="drillbook deploy --version 1.2.0 [--env staging]")
    loaded = project(service)
    runbook = loaded.runbook
    require_env(runbook, env)
    if runbook.deploy is None:
        raise UsageError("the runbook has no `deploy:` command")
    _require_known_version(loaded, version)
    confirm_env(env, yes, "deploying")
    previous = previous_version(loaded.root, runbook, version)
    argv = command_of(runbook.deploy, placeholders(runbook, env, version, previous))
    step = PlannedStep("deploy", "deploy", f"deploy {version} to {env}", changes=True, argv=argv)
    from drillbook.state import current_version

    # What runs there now, so that the journal alone says what to go back to, even when this
    # deploy fails half-way.
    found = current_version(loaded.root, env, service=runbook.service)
    release_ = runbook.release(version)
    with open_session(
        loaded,
        action="deploy",
        env=env,
        version=version,
        console=console,
        extra={
            "previous": previous,
            "found_version": found,
            # The journal alone answers who owns what was deployed and how to undo it.
            "changes": [
                {
                    "change": ch.id,
                    "title": ch.title,
                    "owner": ch.owner,
                    "rollback": ch.rollback.text,
                }
                for ch in (release_.changes if release_ else ())
            ],
            "undo": f"drillbook deploy --env {env} --version {found}" if found else None,
        },
    ) as session:
        executor = Executor(session, total=1)
        session.results = executor.results
        result = executor.command(step, runbook.deploy, version=version, previous=previous)
        if result.ok:
            from drillbook.history import undo_of_deploy

            session.event(
                "deployed",
                version=version,
                previous=previous,
                by="deploy",
                undo=undo_of_deploy(env, found, version),
            )
        session.outcome = "ok" if result.ok else "failed"
        session.exit_code = 0 if result.ok else 1
        if not result.ok:
            msg = f"deploy of {version} to {env} failed: {result.detail}"
            # What to do next, as an interrupted deploy says: deploy again, or put back what ran.
            back = (
                f"; `drillbook deploy --env {env} --version {found}` puts back {found}, which "
                "ran before"
                if found and found != version
                else ""
            )
            hint = (
                f"{env} may be half-deployed; look at the output above. Once its cause is fixed, "
                f"`drillbook deploy --env {env} --version {version}` deploys {version} again{back}"
            )
            # Said once the run is over, and written with its `run_finished` too.
            session.summary, session.hint = msg, hint
        if format == "json":
            # A release's summary, so that a pipeline reads a deploy as it reads a release;
            # on a failure, the error that follows adds why to this one document.
            outcome = Outcome(
                session.exit_code,
                session.outcome,
                f"deployed {version} to {env}" if result.ok else session.summary or "",
                failed=None if result.ok else result,
            )
            emit_json(summary_json(session, outcome))
    if not result.ok:
        raise StepFailed(session.summary or "", hint=session.hint)


def _require_known_version(loaded: Any, version: str) -> None:
    """Refuse a version that the runbook does not declare and no tag marks: a typo, surely."""
    from drillbook import gitops
    from drillbook.errors import UsageError
    from drillbook.versions import is_semver

    runbook = loaded.runbook
    if not is_semver(version):
        msg = f"--version expects a semver version such as 1.2.0, got {version!r}"
        raise UsageError(msg)
    if runbook.release(version) is not None:
        return
    tag = runbook.tag_name(version)
    if gitops.tag_commit(loaded.root, tag) is None:
        declared = ", ".join(r.version for r in runbook.releases) or "none"
        msg = (
            f"{version} is neither declared in the runbook (declared: {declared}) nor released "
            f"(no tag {tag}), so there is nothing to deploy"
        )
        raise UsageError(msg, hint="check the version, or declare it under `releases:`")


@drill_task(
    help={
        **RUN_HELP,
        "version": "the version whose expected checks to run (default: the newest in the runbook)",
    }
)
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

    console = run_console(format)
    loaded = project(service)
    release_ = pick_version(loaded.runbook, version)
    require_env(loaded.runbook, env)
    previous = previous_version(loaded.root, loaded.runbook, release_.version)
    items = expected_items(loaded.runbook, release_)
    from drillbook.state import current_version

    running = current_version(loaded.root, env, service=loaded.runbook.service)
    if running is not None and running != release_.version:
        # The checks may pass on another version (a health check does): say which is there.
        console.print(
            f"note: the journal says {env} runs {running}; these are the expected checks of "
            f"{release_.version}",
            style="yellow",
        )
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
            emit_json(
                json.dumps(
                    session.masker.mask_obj(
                        {"ok": result.ok, "checks": [r.as_dict() for r in result.checks]}
                    ),
                    indent=2,
                )
            )
    if not result.ok:
        from drillbook.output import print_failed_checks

        # As the digest of a release shows them: what each check expected and what it got.
        print_failed_checks(console, result)
        msg = f"{result.detail} on {env} for {release_.version}"
        # Running the checks again repeats every one of them, not only those that failed.
        unsafe = [r.name for r in result.checks if not r.retry_safe]
        hint = None
        if unsafe:
            hint = (
                f"{', '.join(unsafe[:3])}{' ...' if len(unsafe) > 3 else ''} may have changed "
                f"{env}, and running the checks again repeats it: look at what it did first"
            )
        raise CheckFailed(msg, hint=hint, retry_safe=not unsafe)


@drill_task(
    help={
        "version": "the version to tag (required)",
        "push": "push the tag to origin",
        "service": RUN_HELP["service"],
        "format": RUN_HELP["format"],
    }
)
def tag(
    c: Context,
    version: str | None = None,
    push: bool = False,
    service: str | None = None,
    format: str = "text",
) -> None:
    """Make the annotated tag of a version: its changes, owners and rollback summary."""
    from drillbook import gitops
    from drillbook.errors import (
        Interrupted,
        PreconditionFailed,
        StepFailed,
        TagElsewhere,
        UsageError,
    )
    from drillbook.leftovers import RUN_VARIABLE
    from drillbook.output import summary_json
    from drillbook.release import Outcome, pick_version, preflight, push_later, tag_message
    from drillbook.session import open_session

    console = run_console(format)
    loaded = project(service)
    if version is None:
        # A tag says "released": `rollback` and `previous` read it. Which version that is
        # must be said, as for a deploy, not guessed as the newest in the runbook.
        newest = pick_version(loaded.runbook, None).version
        msg = "tag needs --version VERSION: a tag marks that version as released"
        raise UsageError(msg, hint=f"drillbook tag --version {newest}")
    release_ = pick_version(loaded.runbook, version)
    # A tag runs no check and writes no note: only git and origin are judged.
    found = preflight(loaded, "staging", release_.version, push=push, survey=True, tag_only=True)
    made_by = _pushing_a_released_tag(loaded, release_.version, found, push)
    for problem in found.problems:
        if not (made_by and isinstance(problem, TagElsewhere)):
            raise problem
    commit = found.tag_commit if made_by else found.head
    # A run of its own: the lock (a release that is running may yet fail and roll back, and
    # its tag is its own to make) and a journal of what was tagged and pushed. A release on any
    # environment makes the tag, so the locks of them all are held.
    with open_session(
        loaded,
        action="tag",
        env="staging",
        version=release_.version,
        console=console,
        extra={"tag": found.tag, "head": found.head, "push": push},
        also_lock=tuple(sorted(loaded.runbook.environments)),
    ) as session:
        if made_by:
            state = "exists"
            console.print(
                f"{found.tag} is on {commit[:9]}, where release run {made_by} made it; HEAD "
                f"has moved on since, so it is pushed as it is"
            )
        else:
            message = tag_message(loaded.runbook, release_, found.previous, masker=session.masker)
            try:
                state = gitops.create_tag(loaded.root, found.tag, message, commit=commit)
            except PreconditionFailed as exc:
                signum = session.stop.signum
                if signum is None:
                    raise
                # Ctrl-C reaches git (and a gpg asking for a passphrase) too: it failed of it.
                msg = (
                    f"interrupted by {signal.Signals(signum).name} while git made the tag "
                    f"{found.tag}: {exc.message}"
                )
                raise Interrupted(signum, msg) from None
            if state == "exists":
                console.print(f"{found.tag} already on {commit[:9]} (HEAD): done")
            else:
                console.print(f"created {found.tag} on {commit[:9]}")
        session.event("tagged", tag=found.tag, commit=commit, state=state)
        if push:
            pushed = gitops.push_tag(
                loaded.root,
                found.tag,
                stop=session.stop,
                env={RUN_VARIABLE: session.run_id},
                mask=session.masker.mask_unseen,
            )
            if pushed.outcome == "interrupted":
                session.event("push_interrupted", tag=found.tag, detail=pushed.detail)
                stopped = Interrupted(session.stop.signum or 2, pushed.detail)
                again = push_later(loaded.root, loaded.runbook, release_.version)
                stopped.hint = f"`{again}` pushes the same tag (retry safe)"
                raise stopped
            if not pushed.ok:
                session.event(
                    "push_failed",
                    tag=found.tag,
                    detail=pushed.detail,
                    output_tail=pushed.output_tail,
                )
                # git's own words: a hook's refusal says why ("tags are frozen today").
                said = "".join(f"\n  │ {line}" for line in pushed.output_tail.splitlines())
                msg = f"push of {found.tag} failed; the tag stays local: {pushed.detail}{said}"
                again = push_later(loaded.root, loaded.runbook, release_.version)
                if format == "json":
                    # The tag was made: the summary says so, and the error adds why it failed.
                    failed = Outcome(1, "push_failed", msg, artifacts={"tag": found.tag})
                    emit_json(summary_json(session, failed))
                raise StepFailed(
                    msg,
                    hint=f"run `{again}` again once origin accepts it; it pushes the same tag "
                    "(retry safe)",
                )
            session.event("pushed", tag=found.tag, already=pushed.already)
            console.print(pushed.detail if pushed.already else f"pushed {found.tag}")
        session.outcome, session.exit_code = "ok", 0
        if format == "json":
            done = "already on" if state == "exists" else "created on"
            headline = f"{found.tag} {done} {commit[:9]}{', pushed' if push else ''}"
            outcome = Outcome(0, "ok", headline, artifacts={"tag": found.tag})
            emit_json(summary_json(session, outcome))


def _pushing_a_released_tag(loaded: Any, version: str, found: Any, push: bool) -> str | None:
    """The run id of the release that made the tag on the commit where it is, when `tag
    --push` is to push that tag and HEAD has moved on since; else None.

    A release whose push failed says to push later with `tag --push`; by then others may
    have committed. Its tag is the release's own, so it is pushed as it is, never moved;
    a tag no release made stays refused (exit 3).
    """
    from drillbook.state import tag_made_by_release

    if not push or found.tag_commit is None or found.tag_done:
        return None
    service = loaded.runbook.service
    return tag_made_by_release(loaded.root, service, version, found.tag, found.tag_commit)


@drill_task(
    name="rollback-note",
    help={
        "version": "the version whose rollback note to write (default: the newest in the runbook)",
        "env": "the environment it goes to (default: staging)",
        "service": RUN_HELP["service"],
    },
)
def rollback_note(
    c: Context, version: str | None = None, env: str = "staging", service: str | None = None
) -> None:
    """Render the rollback note of a version to notes/ (atomically)."""
    from drillbook.files import require_replaceable, require_writable
    from drillbook.release import (
        note_path,
        pick_version,
        previous_version,
        require_env,
        write_note,
    )
    from drillbook.session import open_session

    loaded = project(service)
    release_ = pick_version(loaded.runbook, version)
    require_env(loaded.runbook, env)
    # As a release's preflight: a note that cannot be written is said so, not a crash.
    require_writable(loaded.root / "notes", "the rollback note")
    require_replaceable(
        loaded.root / note_path(loaded.runbook, release_.version, env), "the rollback note"
    )
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
