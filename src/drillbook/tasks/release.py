"""`plan`, `release` and `rollback`: the whole checklist and its undo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from invoke import Context, Exit

from drillbook.console import Console
from drillbook.tasks._base import (
    RUN_HELP,
    confirm_env,
    drill_task,
    emit_json,
    finish,
    project,
    require_format,
    run_console,
)

# --- plan and release -------------------------------------------------------------------------


class NothingToRelease(Exception):
    """With `--if-unreleased`: the version is released already, on another commit."""

    def __init__(self, version: str, refusal: Any) -> None:
        super().__init__(refusal.message)
        self.version = version
        self.refusal = refusal


def release_plan(
    loaded: Any,
    version: str | None,
    env: str,
    push: bool,
    *,
    survey: bool = False,
    if_unreleased: bool = False,
) -> tuple[Any, ...]:
    from drillbook.errors import TagElsewhere
    from drillbook.plan import plan_release
    from drillbook.release import pick_version, preflight, require_env

    release = pick_version(loaded.runbook, version)
    require_env(loaded.runbook, env)
    try:
        found = preflight(loaded, env, release.version, survey=survey, push=push)
    except TagElsewhere as exc:
        if if_unreleased:
            raise NothingToRelease(release.version, exc) from None
        raise
    # A plan lists every refusal in the order a release meets them: the release would stop at
    # the first, so only a first that is this one means there is nothing to do.
    if if_unreleased and found.problems and isinstance(found.problems[0], TagElsewhere):
        raise NothingToRelease(release.version, found.problems[0])
    plan = plan_release(
        loaded.runbook,
        env=env,
        version=release.version,
        previous=found.previous,
        push=push,
        tag_exists_here=found.tag_done,
        pushed_here=found.remote is not None and found.remote.commit == found.head,
    )
    return release, found, plan


def _probes(loaded: Any, env: str, found: Any) -> list[tuple[str, str, bool]]:
    """Read-only probes for plan and --dry-run: git state, the tag, whether env answers."""
    probes = [
        *[("refused", problem.message, False) for problem in found.problems],
        ("git", f"HEAD at {found.head[:9]}", True),
        _tag_probe(found),
        *([_origin_probe(found)] if found.remote is not None else []),
        _previous_probe(found),
    ]
    ident = found.identity
    probes.append(("identity", f"{ident[0]} <{ident[1]}>" if ident else "missing", bool(ident)))
    if found.signs_tags and not found.tag_done:
        # Not tried here: a plan asks no one for a passphrase.
        probes.append(("signing", "git signs the tag (tag.gpgSign): tried first", True))
    probes.append(_lock_probe(loaded.root, env))
    url = loaded.runbook.environments[env].url
    probes.append(_answers(env, url, deploys=loaded.runbook.deploy is not None))
    return probes


def _previous_probe(found: Any) -> tuple[str, str, bool]:
    """The version a failed release would roll back to, as the tags say."""
    from drillbook.errors import TagsMissing

    if found.previous is None and any(isinstance(p, TagsMissing) for p in found.problems):
        why = next(p for p in found.problems if isinstance(p, TagsMissing)).message
        clone = "a clone that fetches no tags" if "--no-tags" in why else "a shallow clone"
        return ("previous", f"unknown: {clone}, its older tags missing", False)
    return ("previous", found.previous or "none (first release)", True)


def _lock_probe(root: Any, env: str) -> tuple[str, str, bool]:
    """Who holds env's lock, read without taking it: a plan neither waits for a run nor fails
    because one is going, but says that a release now would be refused."""
    from drillbook.lock import live_holder

    holder = live_holder(root, env)
    if holder is None:
        return ("lock", "free", True)
    return (
        "lock",
        f"held by run {holder['run']} (pid {holder['pid']} on host {holder['host']}, started "
        f"{holder.get('started', 'at an unknown time')}): a release now would exit 75",
        False,
    )


def _tag_probe(found: Any) -> tuple[str, str, bool]:
    """The release tag as the preflight found it: on HEAD, on another commit, or absent."""
    if found.tag_done:
        return ("tag", f"{found.tag} on HEAD (done)", True)
    if found.tag_commit is not None:
        where = f"{found.tag} exists on {found.tag_commit[:9]}, not on HEAD {found.head[:9]}"
        return ("tag", where, False)
    return ("tag", f"{found.tag} absent; it will be made on {found.head[:9]}", True)


def _origin_probe(found: Any) -> tuple[str, str, bool]:
    """The release tag as origin has it (a plan with --push): on HEAD, absent, or unknown."""
    remote = found.remote
    if not remote.answered:
        return ("origin", f"cannot be asked ({remote.detail}); the push would fail", False)
    if remote.commit == found.head:
        return ("origin", f"{found.tag} on HEAD (pushed)", True)
    if remote.commit is None:
        return ("origin", f"{found.tag} absent; the push will send it", True)
    return ("origin", f"{found.tag} on {remote.commit[:9]}, not on HEAD", False)


def _answers(env: str, url: str, *, deploys: bool) -> tuple[str, str, bool]:
    """Whether something accepts connections at `url`: a TCP connect, never a request.

    A request would be a side effect on the service (a log line, a metric); a connect is not.
    Nothing answering is fine when the release's deploy starts the service; without a deploy,
    the expected checks would find nothing there.
    """
    import socket
    from urllib.parse import urlsplit

    from drillbook.httpsession import lookup_in_time

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    # The connect's timeout starts once the name resolved: a silent DNS would hold the plan.
    if lookup_in_time(url, 2.0, lambda: False) is not None:
        down = f"{url} does not answer (DNS did not answer for {parts.hostname} within 2s)"
    else:
        try:
            with socket.create_connection((parts.hostname or "", port), timeout=2):
                return (env, f"{url} accepts connections", True)
        except OSError as exc:
            down = f"{url} does not answer ({exc.strerror or type(exc).__name__})"
    if deploys:
        return (env, f"{down}; the deploy starts it", True)
    return (env, f"{down}, and the runbook has no deploy to start it: its checks would fail", False)


_IF_UNRELEASED = (
    "exit 0 saying so when the version is released already on another commit (a push of "
    "main that declares no new version, in CI)"
)


@drill_task(help={**RUN_HELP, "push": "include pushing the tag", "if_unreleased": _IF_UNRELEASED})
def plan(
    c: Context,
    version: str | None = None,
    env: str = "staging",
    push: bool = False,
    if_unreleased: bool = False,
    service: str | None = None,
    format: str = "text",
) -> None:
    """Print every step `release` would run, marking those that change something."""

    require_format(format)
    loaded = project(service)
    try:
        release_, found, planned = release_plan(
            loaded, version, env, push, survey=True, if_unreleased=if_unreleased
        )
    except NothingToRelease as nothing:
        _say_nothing_to_release(Console(), loaded, env, nothing, format)
        return
    done = already_done(loaded, env, release_.version, found)
    found = _as_met(found, done, push)
    _show_plan(Console(), loaded, env, _as_done(planned, found, done, push), found, format)


def _say_nothing_to_release(
    console: Console, loaded: Any, env: str, nothing: NothingToRelease, format: str
) -> None:
    """Say that there is nothing to release (`--if-unreleased`): nothing ran, exit 0."""
    headline = f"nothing to release: {nothing.refusal.message}"
    hint = nothing.refusal.hint
    if format == "json":
        summary = {
            "action": "release",
            "service": loaded.runbook.service,
            "env": env,
            "version": nothing.version,
            "outcome": "nothing_to_release",
            "exit": 0,
            "headline": headline,
            "hint": hint,
            "steps": [],
        }
        emit_json(json.dumps(summary, indent=2))
        return
    console.print(headline)
    if hint:
        console.print(f"  hint: {hint}")


def _show_plan(
    console: Console, loaded: Any, env: str, planned: Any, found: Any, format: str
) -> None:
    """Print a plan with its probes; exit 3 after it when something would refuse the run."""
    from drillbook.output import plan_json, print_plan
    from drillbook.session import masker_for

    # Masked as the run it plans: a command's arguments, a URL's password, origin's words.
    masker = masker_for(loaded)
    if console.masker is None:
        console.masker = masker
    probes = _probes(loaded, env, found)
    if format == "json":
        emit_json(json.dumps(masker.mask_obj(plan_json(planned, probes)), indent=2))
    else:
        print_plan(console, planned, probes)
    if found.problems:
        first = found.problems[0]
        count = len(found.problems)
        more = f" (and {count - 1} more above)" if count > 1 else ""
        first.message = f"the release would be refused: {first.message}{more}"
        raise first
    unasked = _push_unasked(planned, found)
    if unasked is not None:
        raise unasked
    if format != "json":
        console.print("nothing was changed: a plan runs only read-only probes")


def _push_unasked(planned: Any, found: Any) -> Exception | None:
    """Why a release would fail at its push, when origin could not be asked where its tag is.

    `release --push` is not refused for it (origin may answer by the push), but as things
    are it runs every step and ends with exit 1 at the push, the tag local: a plan that says
    so exits 1 too, not 0 as if the release would pass.
    """
    from drillbook.errors import CheckFailed

    remote = found.remote
    if remote is None or remote.answered or not any(s.kind == "push" for s in planned.steps):
        return None
    others = sum(1 for s in planned.steps if s.kind != "push")
    then = (
        f"runs its {others} other steps, then its push fails and the tag stays local"
        if others
        else "has only its push left, and that fails"
    )
    msg = (
        f"the release would fail at its push: origin cannot be asked whether it has tag "
        f"{found.tag} ({remote.detail}), expected an answer; a `release --push` now {then} "
        "(exit 1)"
    )
    hint = (
        "fix origin (`git remote -v`, `git ls-remote origin`), then plan again; or release "
        f"without --push and send the tag later: drillbook tag --version {planned.version} "
        "--push"
    )
    return CheckFailed(msg, hint=hint)


@drill_task(
    help={
        **RUN_HELP,
        "dry_run": "print the plan and run only read-only probes",
        "yes": "do not ask before releasing to an environment other than staging",
        "push": "push the tag to origin at the end",
        "no_auto_rollback": "on a failure after the deploy, leave the environment as it is",
        "if_unreleased": _IF_UNRELEASED,
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
    if_unreleased: bool = False,
    service: str | None = None,
    format: str = "text",
) -> None:
    """Run the whole checklist in order, stopping at the first failure; roll back on its own."""
    from drillbook.commands import first_release_undo
    from drillbook.plan import note_path
    from drillbook.release import release_flow, rollback_command
    from drillbook.session import open_session

    console = run_console(format)
    loaded = project(service)
    try:
        release_, found, planned = release_plan(
            loaded, version, env, push, survey=dry_run, if_unreleased=if_unreleased
        )
    except NothingToRelease as nothing:
        _say_nothing_to_release(console, loaded, env, nothing, format)
        return
    done = already_done(loaded, env, release_.version, found)
    if dry_run:
        found = _as_met(found, done, push)
        _show_plan(console, loaded, env, _as_done(planned, found, done, push), found, format)
        return
    confirm_env(env, yes, "releasing")
    if done is not None:
        run, said = done
        if _push_left(found, push):
            # Done but for the push (it failed, or --push is new): push, and nothing else.
            console.print(f"{said}; its tag is not on origin yet")
            _push_only(loaded, env, release_.version, found.tag, console, format)
            return
        headline = f"{said}{', pushed' if push else ''}. Nothing changed."
        console.print(headline)
        if format == "json":
            # The shape of every release summary, so that a pipeline run twice reads the same
            # fields (version, artifacts.tag) the second time; the run is the one that did it.
            summary = {
                "run": run,
                "action": "release",
                "service": loaded.runbook.service,
                "env": env,
                "version": release_.version,
                "outcome": "already_done",
                "exit": 0,
                "headline": headline,
                "duration_ms": 0,
                "artifacts": {
                    "tag": found.tag,
                    "note": str(note_path(loaded.runbook, release_.version, env)),
                },
                "journal": f".drillbook/journal/{run}.jsonl",
                "steps": [],
            }
            emit_json(json.dumps(summary, indent=2))
        return
    params = {
        "params": {
            "version": release_.version,
            "push": push,
            "auto_rollback": not no_auto_rollback,
        },
        "previous": found.previous,
        # The commit the gates judge and the tag goes on: a resume must find the same one.
        "head": found.head,
        "changes": [
            {"change": ch.id, "title": ch.title, "owner": ch.owner, "rollback": ch.rollback.text}
            for ch in release_.changes
        ],
        # A first release has no version to roll back to (`rollback` refuses, exit 2): the
        # words history gives for it, not a command that does not work.
        "undo": rollback_command(env, found.previous)
        if found.previous
        else first_release_undo(ch.rollback.text for ch in release_.changes),
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


def already_done(loaded: Any, env: str, version: str, found: Any) -> tuple[Any, str] | None:
    """(run id, what says so) when `version` is released on `env` already, else None.

    Done means: a release of it with this runbook finished, its tag is on HEAD, its note is
    there, and the journal says `env` runs it. `release` then changes nothing (but perhaps
    the push), and `plan` must say so rather than list the steps of a fresh release.
    """
    from drillbook.plan import note_path
    from drillbook.state import current_version, finished_release

    done = finished_release(loaded.root, env, version, loaded.sha256)
    note = loaded.root / note_path(loaded.runbook, version, env)
    if (
        done is None
        or not found.tag_done
        or not note.is_file()
        or current_version(loaded.root, env, service=loaded.runbook.service) != version
    ):
        return None
    said = (
        f"release {version} of {loaded.runbook.service} is already done on {env} "
        f"(run {done.get('run')}, {done.get('ts')}): tag {found.tag} on HEAD, "
        f"{env} runs {version}, note {note.relative_to(loaded.root)}"
    )
    return done.get("run"), said


def _push_left(found: Any, push: bool) -> bool:
    """Whether a done release has its push left: asked for, and origin lacks the tag here."""
    return push and (found.remote is None or found.remote.commit != found.head)


def _push_planned(tag: str) -> Any:
    """The push step, as `plan_release` plans it, for a release that has only it left."""
    from drillbook.plan import PlannedStep

    return PlannedStep("push", "push", f"push tag {tag} to origin", changes=True)


def _as_met(found: Any, done: tuple[Any, str] | None, push: bool) -> Any:
    """The survey's problems as `release` would meet them: an earlier run that never finished
    refuses a run that changes something, not a release done already with nothing left."""
    from dataclasses import replace

    if found.unfinished is None or (done is not None and not _push_left(found, push)):
        return found
    return replace(found, problems=(*found.problems, found.unfinished))


def _as_done(planned: Any, found: Any, done: tuple[Any, str] | None, push: bool) -> Any:
    """The plan of a release that is done already: what `release` would then run, which is
    nothing, or only the push. A release that would be refused keeps its whole plan."""
    from dataclasses import replace

    if done is None or found.problems:
        return planned
    _, said = done
    if _push_left(found, push):
        note = f"{said}; its tag is not on origin yet: a release now only pushes it"
        return replace(planned, steps=(_push_planned(found.tag),), notes=(note,))
    note = f"{said}{', pushed' if push else ''}: a release now changes nothing"
    return replace(planned, steps=(), notes=(note,))


def _push_only(
    loaded: Any, env: str, version: str, tag: str, console: Console, format: str
) -> None:
    """The one step left of a release that is otherwise done: push its tag, with a journal."""
    from drillbook.execute import Executor
    from drillbook.release import Outcome, push_later, push_step
    from drillbook.session import open_session

    step = _push_planned(tag)
    with open_session(
        loaded,
        action="push",
        env=env,
        version=version,
        console=console,
        extra={"tag": tag},
    ) as session:
        executor = Executor(session, total=1)
        session.results = executor.results
        result = push_step(session, executor, step, tag)
        if result.ok:
            outcome = Outcome(0, "ok", f"pushed {tag}; release {version} is done on {env}")
        else:
            session.event("push_failed", tag=tag, detail=result.detail)
            outcome = Outcome(
                1,
                "push_failed",
                f"the push of {tag} failed; the tag stays local. Push it later with "
                f"`{push_later(loaded.root, loaded.runbook, version)}` (retry safe)",
                failed=result,
            )
        finish(session, outcome, format)
    if outcome.exit_code:
        raise Exit(code=outcome.exit_code)


def _refuse_unfinished_first(root: Path, env: str) -> None:
    """Raise the refusal of a run on `env` that never finished, if there is one.

    What the journal says runs on `env` is what a killed run left it saying: a rollback
    killed after its redeploy says the environment runs its target already. Told "nothing
    to roll back" instead, the person would never learn of the run to close first.
    """
    from drillbook.lock import live_holder
    from drillbook.session import unfinished_refusal

    holder = live_holder(root, env)
    refusal = unfinished_refusal(root, env, besides=holder["run"] if holder else None)
    if refusal is not None:
        raise refusal


@drill_task(
    help={
        "env": "the environment to roll back (default: staging)",
        "to": "the version to go back to (default: the one before the current)",
        "yes": "do not ask before rolling back an environment other than staging",
        "service": RUN_HELP["service"],
        "format": RUN_HELP["format"],
    }
)
def rollback(
    c: Context,
    env: str = "staging",
    to: str | None = None,
    yes: bool = False,
    service: str | None = None,
    format: str = "text",
) -> None:
    """Roll back for real: the changes' rollback steps, the redeploy, the rollback checks."""
    from drillbook.errors import EXIT_ROLLBACK_FAILED, UsageError
    from drillbook.execute import Executor
    from drillbook.release import (
        Outcome,
        after_failed_rollback,
        previous_version,
        require_env,
        run_rollback,
    )
    from drillbook.session import open_session
    from drillbook.state import current_deploy, version_of

    console = run_console(format)
    loaded = project(service)
    runbook = loaded.runbook
    require_env(runbook, env)
    deployed = current_deploy(loaded.root, env, service=runbook.service)
    current = version_of(deployed) if deployed is not None else None
    if current is None and to is None:
        _refuse_unfinished_first(loaded.root, env)
        msg = (
            f"the journal has no deploy of {runbook.service} to {env}, so what runs there is "
            "unknown"
        )
        raise UsageError(msg, hint=f"say where to go with --to VERSION ({_released(loaded)})")
    target = to or previous_version(loaded.root, runbook, current or "")
    if target is None:
        _refuse_unfinished_first(loaded.root, env)
        raise _nothing_below(loaded, env, str(current))
    if to is None and deployed is not None:
        _require_no_tag_skipped(loaded, env, str(current), target, deployed)
    if to is not None:
        _require_rollback_target(loaded, env, current, to)
    undone, proven_by = _undone(loaded, current, target)
    from drillbook.release import require_check_urls, rollback_items

    proofs = rollback_items(runbook, proven_by)
    # As a release does: a check this environment would refuse is found before any step.
    require_check_urls(runbook, env, proofs, version=target, previous=current, kind="rollback")
    # A rollback deploys and runs the changes' steps: on production it is asked for, as a
    # release or a deploy is, once every refusal has had its say (none after the answer).
    confirm_env(env, yes, "rolling back", what=f"rolling back {env}")
    if current is not None and runbook.release(current) is None:
        # Taken out of the runbook since it was deployed: its rollback is not known any more.
        console.print(
            f"{env} runs {current}, which the runbook does not declare any more: its changes' "
            f"rollback steps are unknown and skipped; {target} is deployed and proven with "
            + (f"the rollback checks of {proven_by.version}" if proofs else "no checks"),
            style="yellow",
        )
    if current is None:
        console.print(
            f"the journal does not say what {env} runs: the changes' rollback steps are skipped; "
            f"{target} is deployed and proven with "
            + (f"the rollback checks of {proven_by.version}" if proven_by else "no checks"),
            style="yellow",
        )
    changes = [
        {"change": c.id, "title": c.title, "owner": c.owner, "rollback": c.rollback.text}
        for r in undone
        for c in r.changes
    ]
    retry_safe = all(c.rollback.retry_safe for r in undone for c in r.changes)
    with open_session(
        loaded,
        action="rollback",
        env=env,
        version=current,
        console=console,
        extra={
            "to_version": target,
            "changes": changes,
            "undone": [r.version for r in undone],
            "retry_safe": retry_safe,
            "undo": f"drillbook deploy --env {env} --version {current}" if current else None,
        },
        retry_safe=retry_safe,
    ) as session:
        executor = Executor(session, total=0)
        session.results = executor.results
        ok, results = run_rollback(
            session,
            executor,
            undone,
            from_version=current,
            target=target,
            reason="requested by hand",
            proven_by=proven_by,
        )
        # With the journal lost, what ran before is unknown: say so rather than "from None".
        was = f"from {current} " if current else ""
        # No checks pass vacuously: say that nothing proved the result.
        proof = (
            "the rollback checks pass"
            if proofs
            else f"no rollback checks describe {target}, so nothing proved it: check {env} by hand"
        )
        if ok:
            outcome = Outcome(
                0,
                "ok",
                f"{env} rolled back {was}to {target}; {proof}",
                rollback=results,
            )
        else:
            # What the journal says runs now, and what the same command again would do: undo
            # one more release once the redeploy finished, as a rollback cut short in its
            # checks says; before, run the rollback's steps again.
            headline = (
                f"the rollback of {env} {was}to {target} failed: a person must act"
                + after_failed_rollback(
                    loaded, env, undone, results, from_version=current, target=target
                )
            )
            outcome = Outcome(
                EXIT_ROLLBACK_FAILED,
                "rollback_failed",
                headline,
                failed=results[-1] if results else None,
                rollback=results,
            )
        finish(session, outcome, format)
    if outcome.exit_code:
        raise Exit(code=outcome.exit_code)


def _released(loaded: Any) -> str:
    """The newest final releases (by git tags), as a person reads them after "--to VERSION"
    (with the journal lost, --to refuses a pre-release)."""
    from drillbook import gitops
    from drillbook.versions import is_pre_release, semver_key

    runbook = loaded.runbook
    released = sorted(
        (
            v
            for v in gitops.tagged_versions(gitops.tags(loaded.root), runbook.tag_format)
            if not is_pre_release(v)
        ),
        key=semver_key,
    )
    if not released:
        return f"no version is released yet: no tag named like {runbook.tag_name('X.Y.Z')}"
    return f"released, by git tags: {', '.join(released[-5:])}"


def _nothing_below(loaded: Any, env: str, current: str) -> Any:
    """The refusal of a rollback from `current` when no released version is below it.

    "--to VERSION" would be refused too: a first release is undone as its changes'
    rollback says, as the message of a first release that fails says.
    """
    from drillbook.errors import UsageError

    runbook = loaded.runbook
    tag = runbook.tag_name("X.Y.Z")
    msg = (
        f"{env} runs {current}, and no released version below it was found in git tags "
        f"(named like {tag}): there is nothing to roll back to"
    )
    release = runbook.release(current)
    untagged = (
        f"if a version below it ran before without a tag, tag that commit "
        f"(git tag -a {tag} -m X.Y.Z COMMIT) and pass --to X.Y.Z"
    )
    if release is None:
        return UsageError(msg, hint=untagged[0].upper() + untagged[1:])
    words = "; ".join(f"{c.id}: {c.rollback.text}" for c in release.changes)
    hint = f"{current} is the first release: undo it by hand, as its rollback says ({words}); "
    hint += untagged
    return UsageError(msg, hint=hint)


def _undone(loaded: Any, current: str | None, target: str) -> tuple[list[Any], Any]:
    """The releases a rollback from `current` to `target` undoes, newest first, and the one
    whose rollback checks prove `target` (the oldest of them: its rollback leads to `target`).

    Between the two, only released versions count (a tag says so): a version that failed
    and was rolled back never ran, and its rollback steps must not run now. With `current`
    unknown nothing is undone step by step; the checks are those of the first released
    version above `target`.
    """
    from drillbook import gitops
    from drillbook.versions import semver_key

    runbook = loaded.runbook
    tags = gitops.tags(loaded.root)
    low = semver_key(target)
    above = sorted(
        (r for r in runbook.releases if semver_key(r.version) > low),
        key=lambda r: semver_key(r.version),
        reverse=True,
    )
    released = [r for r in above if runbook.tag_name(r.version) in tags]
    if current is None:
        return [], (released[-1] if released else None)
    high = semver_key(current)
    undone = [
        r
        for r in above
        if semver_key(r.version) <= high and (r.version == current or r in released)
    ]
    return undone, (undone[-1] if undone else None)


def _require_no_tag_skipped(
    loaded: Any, env: str, current: str, target: str, deployed: dict[str, Any]
) -> None:
    """Refuse the default target when a version released to `env` between it and `current`
    has lost its tag (`release.require_no_lost_tag`): besides the releases the runbook
    declares, the journal says which came before `current`, its deploy's rollback target and
    what the deploy before it left."""
    from drillbook.release import require_no_lost_tag
    from drillbook.state import ran_before

    before = [
        deployed.get("previous"),
        ran_before(loaded.root, env, service=loaded.runbook.service),
    ]
    require_no_lost_tag(
        loaded,
        target,
        current,
        also=[v for v in before if isinstance(v, str)],
        doing=f"{env} runs {current}, and the rollback",
    )


def _require_rollback_target(loaded: Any, env: str, current: str | None, to: str) -> None:
    """Refuse a `--to` that is not a released version below the one `env` runs.

    On the worst day a typo (`--to 1.1.1` for 1.1.0) must not deploy a version nobody
    released, and a version above the current one is a release, with its gates and checks.
    """
    from drillbook import gitops
    from drillbook.errors import UsageError
    from drillbook.versions import is_pre_release, is_semver, semver_key

    runbook = loaded.runbook
    if not is_semver(to):
        msg = f"--to expects a semver version such as 1.2.0, got {to!r}"
        bare = to.strip().lstrip("vV")
        # `v1.1.0` is how the tag is named, and what a person copies from `git tag`.
        hint = (
            f"did you mean --to {bare}? versions are written without the tag's `v`"
            if bare != to and is_semver(bare)
            else None
        )
        raise UsageError(msg, hint=hint)
    if current is not None and semver_key(to) == semver_key(current):
        msg = f"{env} already runs {to} (by the journal): there is nothing to roll back to it"
        hint = (
            f"to put it on again, deploy it: drillbook deploy --env {env} --version {to}; "
            "to go further back, name an older version with --to"
        )
        raise UsageError(msg, hint=hint)
    if current is not None and semver_key(to) > semver_key(current):
        msg = f"{env} runs {current}; --to {to} is not below it, and a rollback goes back"
        if runbook.release(to) is None:
            declared = ", ".join(r.version for r in runbook.releases) or "none"
            hint = f"{to} is not in the runbook either (declared: {declared}); check the version"
        else:
            hint = (
                f"to go forward, release it: drillbook release --version {to} --env {env} "
                "(its gates and checks run)"
            )
        raise UsageError(msg, hint=hint)
    if is_pre_release(to) and (current is None or not is_pre_release(current)):
        # A final release rolls back to a final one (`gitops.previous_version`): the rollback
        # checks of the release above describe that version, and would fail on the pre-release.
        runs = (
            f"{env} runs {current}, a final release"
            if current
            else f"the journal does not say what {env} runs"
        )
        # The final releases below what runs (or below the pre-release's own version).
        base = current if current and is_semver(current) else to.split("-", 1)[0]
        below = gitops.previous_version(loaded.root, base, runbook.tag_format)
        msg = (
            f"--to {to} is a pre-release, and {runs}: a rollback goes back to a final release, "
            "whose rollback checks prove it"
        )
        hint = f"to run {to} again, deploy it: drillbook deploy --env {env} --version {to}" + (
            f"; to roll back, name a final release such as --to {below}" if below else ""
        )
        raise UsageError(msg, hint=hint)
    if gitops.tag_commit(loaded.root, runbook.tag_name(to)) is None:
        from drillbook.errors import PreconditionFailed
        from drillbook.state import released_commit

        tag = runbook.tag_name(to)
        commit = released_commit(loaded.root, runbook.service, to, tag)
        if commit is not None:
            # Released, by the journal, and its tag lost since: not a typo to check.
            msg = (
                f"{to} was released, but its tag {tag} is missing, so it is not known as a "
                "released version; nothing ran"
            )
            hint = (
                f"put the tag back on {commit[:12]}, where the release run of {to} made it: "
                f"git tag -a {tag} -m {to} {commit}; then roll back again"
            )
            raise PreconditionFailed(msg, hint=hint)
        released = sorted(
            (
                v
                for v in gitops.tagged_versions(gitops.tags(loaded.root), runbook.tag_format)
                if (current is None or semver_key(v) < semver_key(current))
                # What --to accepts: a pre-release only below a pre-release.
                and (not is_pre_release(v) or (current is not None and is_pre_release(current)))
            ),
            key=semver_key,
        )
        known = ", ".join(released[-5:]) or "none"
        below = f"below {current}" if current else "so far"
        unfetched = gitops.tags_left_unfetched(loaded.root)
        if unfetched is not None:
            from drillbook.errors import TagsMissing

            why, hint = unfetched
            msg = (
                f"no tag {runbook.tag_name(to)} is in {loaded.root}, and {why}, so whether "
                f"{to} was released is unknown (tagged {below}: {known})"
            )
            raise TagsMissing(msg, hint=hint)
        msg = (
            f"{to} was never released: expected a tag {runbook.tag_name(to)}, found none "
            f"(released {below}: {known})"
        )
        raise UsageError(msg, hint="check the version; `drillbook history` lists what was deployed")
