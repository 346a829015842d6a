"""The release checklist and the rollback, as flows over the executor.

release: preflight, lint, unit, verify-config, deploy, integration, tag, rollback note (push).
When a step fails after the deploy, the rollback runs on its own: each change's rollback steps
in reverse order, the previous version deployed again, the rollback checks. Exit 4 when the
rollback is proven, 5 when it is not.
"""

from __future__ import annotations

import re
import shlex
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drillbook import gitops
from drillbook.commands import first_release_undo
from drillbook.describe import check_label, describe_check, describe_step
from drillbook.errors import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_ROLLBACK_FAILED,
    EXIT_ROLLED_BACK,
    PreconditionFailed,
    TagElsewhere,
    TagsMissing,
    UsageError,
)
from drillbook.execute import CheckItem, Executor, StepResult
from drillbook.files import require_replaceable, require_writable
from drillbook.model import HttpCheck, Release, Runbook, Step
from drillbook.plan import (
    Plan,
    PlannedStep,
    as_releases,
    note_path,
    placeholders,
    rollback_specs,
    rollback_steps,
    undo_versions,
    uses_placeholder,
)
from drillbook.runbook import LoadedRunbook
from drillbook.secrets import Masker
from drillbook.session import RunSession, masker_for
from drillbook.versions import is_semver, semver_key

#: Folders drillbook itself writes into (journal, notes, reports, docs); they never make a
#: tree dirty, or every release would need a commit of the previous one's outputs.
OWN_OUTPUTS = (".drillbook/", "notes/", "reports/", "site/")


@dataclass
class Outcome:
    """How a flow ended, for the summary and the exit code."""

    exit_code: int
    outcome: str  # ok, failed, rolled_back, rollback_failed, interrupted
    headline: str
    failed: StepResult | None = None
    rollback: list[StepResult] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Preflight:
    """What the read-only probes found."""

    head: str
    previous: str | None
    tag: str
    tag_commit: str | None
    #: What would refuse the run, when surveyed for a plan rather than checked for a run.
    problems: tuple[PreconditionFailed, ...] = ()
    #: The tagger git would record (name, email), or None.
    identity: tuple[str, str] | None = None
    #: What origin said about the tag, when the run pushes and origin exists.
    remote: gitops.RemoteTag | None = None
    #: When surveyed: the refusal an earlier run that never finished would give a run that
    #: changes something (a release done already changes nothing, and meets none).
    unfinished: PreconditionFailed | None = None
    #: Whether git signs the release tag (`tag.gpgSign`).
    signs_tags: bool = False

    @property
    def tag_done(self) -> bool:
        """Whether the release tag already points at HEAD."""
        return self.tag_commit is not None and self.tag_commit == self.head


def pick_version(runbook: Runbook, version: str | None) -> Release:
    """The release to act on: the one named, or the newest in the runbook."""
    if not runbook.releases:
        msg = f"runbook of {runbook.service} declares no releases"
        raise UsageError(msg, hint="add a release under `releases:`")
    if version is None:
        return max(runbook.releases, key=lambda r: semver_key(r.version))
    release = runbook.release(version)
    if release is None:
        known = ", ".join(r.version for r in runbook.releases)
        msg = f"no release {version!r} in the runbook of {runbook.service} (declared: {known})"
        bare = version.strip().lstrip("vV")
        if bare != version and runbook.release(bare) is not None:
            # `v1.2.0` is how the tag is named, and what a person copies from `git tag`.
            hint = f"did you mean --version {bare}? versions are written without the tag's `v`"
        elif not is_semver(version):
            hint = "--version expects a semver version such as 1.2.0"
        else:
            hint = None
        raise UsageError(msg, hint=hint)
    return release


def require_env(runbook: Runbook, env: str) -> None:
    """Refuse an environment the runbook does not declare."""
    if env not in runbook.environments:
        known = ", ".join(runbook.environments)
        msg = f"no environment {env!r} in the runbook (declared: {known})"
        raise UsageError(msg)


def previous_version(root: Path, runbook: Runbook, version: str) -> str | None:
    """The highest released version below `version`, from git tags."""
    return gitops.previous_version(root, version, runbook.tag_format)


def _has_config_rules(runbook: Runbook) -> bool:
    """Whether the runbook's `config:` asks anything of a config file."""
    rules = runbook.config
    return rules is not None and bool(
        rules.required or rules.secrets or rules.rules or rules.same_keys_as
    )


def preflight(
    loaded: LoadedRunbook,
    env: str,
    version: str,
    *,
    need_identity: bool = True,
    survey: bool = False,
    push: bool = False,
    tag_only: bool = False,
) -> Preflight:
    """Look at the world before changing it; raise PreconditionFailed when it says no.

    With `survey`, what would refuse the run is collected in `problems` instead, so that a
    plan can show every step and every problem at once. With `tag_only` (the `tag` task),
    only what the tag and its push need is judged: no config file, note or check URL.
    """
    root = loaded.root
    runbook = loaded.runbook
    problems: list[PreconditionFailed] = []
    stale: PreconditionFailed | None = None
    if runbook.environments[env].config is not None and not tag_only:
        from drillbook.configcheck import verify_config

        # A config file that is missing or does not parse is bad input (exit 2) and found
        # before the gates run; its rules are judged by the verify-config step, in order.
        verify_config(runbook, env, root)
    elif _has_config_rules(runbook) and not tag_only:
        # Without a file the plan has no verify-config step: the release would pass without
        # ever checking the rules the runbook sets, as if they had passed.
        msg = (
            f"the runbook sets config rules, but environment {env!r} has no config file for "
            "them, so its release cannot verify its config"
        )
        hint = (
            f"add `config: config/{env}.env` under environments.{env} in the runbook, or remove "
            "the rules under `config:`"
        )
        raise UsageError(msg, hint=hint)

    def refuse(check: Any, *args: Any, **kwargs: Any) -> None:
        try:
            check(*args, **kwargs)
        except PreconditionFailed as exc:
            if not survey:
                raise
            problems.append(exc)

    # One look at the repository (its git calls side by side); every rule below judges it.
    state = gitops.look(root)
    head = state.head
    if head is None:
        # A branch made with `git checkout --orphan` has none either, in a repository that has.
        msg = (
            f"HEAD of the git repository at {root} has no commit yet (a new repository, or a "
            "branch made with --orphan), so there is nothing to release"
        )
        hint = "commit the project (git add -A && git commit), or switch to the branch to release"
        raise PreconditionFailed(msg, hint=hint)
    # The file this command's output is sent to (`> summary.json`, as CI keeps it) is not a
    # change of the code it releases.
    ignore = (*own_outputs(root, state.top), *gitops.untracked_outputs(state, (1, 2)))
    refuse(gitops.require_clean, root, ignore=ignore, state=state)
    refuse(gitops.require_settled, state)
    if survey:
        # A run checks this once it holds the lock (session.open_session); a plan, which
        # takes no lock, must still say that a release now would be refused. A run still
        # going is not one that never finished: the plan's lock probe names it.
        from drillbook.lock import live_holder
        from drillbook.session import unfinished_refusal

        holder = live_holder(root, env)
        stale = unfinished_refusal(root, env, besides=holder["run"] if holder else None)
    if need_identity:
        refuse(gitops.require_identity, root, state=state)
    tag = runbook.tag_name(version)
    tag_commit = state.tag_commit(tag)
    if state.signs_tags and tag_commit is None and state.identity and not (survey or tag_only):
        # A release that cannot sign its tag would find out after its deploy, and roll back
        # a good release for it. (A plan asks no one for a passphrase; `tag` makes the tag at
        # once, so its own signing is the test.)
        gitops.require_signing(root, commit=head)
    if tag_commit is None:
        # A tag on HEAD made already is the release done; only a new one must be current.
        refuse(gitops.require_current, state)
    if tag_commit is None and not tag_only:
        # As signing: what would refuse the tag is found before the deploy, not after it.
        # (`tag` makes the tag at once, so its own attempt is the test.)
        refuse(gitops.require_taggable, root, tag, commit=head)
    if tag_commit is not None and tag_commit != head:
        refuse(_raise, _tag_elsewhere(loaded, version, tag, tag_commit, head))
    if not tag_only:
        refuse(require_writable, root / "notes", "the rollback note")
        refuse(require_replaceable, root / note_path(runbook, version, env), "the rollback note")
    remote = None
    if push:
        refuse(_require_remote, root, "origin")
        # The commit the push would send: the tag's own when it exists, else HEAD's.
        remote = _origin_tag(root, tag, tag_commit or head, version, refuse)
    try:
        previous = state.previous_version(version, runbook.tag_format)
    except TagsMissing as exc:
        refuse(_raise, exc)
        previous = None
    if previous is not None and not tag_only:
        # Its rollback, on its own or by hand, goes back to `previous`: not past a release.
        refuse(
            require_no_lost_tag,
            loaded,
            previous,
            version,
            doing=f"if {version} fails, its rollback",
        )
    release = runbook.release(version)
    if release is not None and not tag_only:
        for exc in check_url_refusals(runbook, env, release, previous):
            refuse(_raise, exc)
        from drillbook.render import overridden

        if overridden(root, "rollback-note.md.j2"):
            _require_note_renders(loaded, env, release, previous, tag)
    return Preflight(
        head,
        previous,
        tag,
        tag_commit,
        tuple(problems),
        state.identity,
        remote,
        stale,
        state.signs_tags,
    )


def _tag_elsewhere(
    loaded: LoadedRunbook, version: str, tag: str, tag_commit: str, head: str
) -> TagElsewhere:
    """The refusal of a release tag found on another commit than HEAD.

    When the journal shows a release made it there, it marks what was released: HEAD has
    moved on, and deleting the tag would lose the rollback target of the next release.
    """
    from drillbook.state import tag_made_by_release

    made = tag_made_by_release(loaded.root, loaded.runbook.service, version, tag, tag_commit)
    if made is not None:
        msg = (
            f"{version} is released already: tag {tag} is on {tag_commit[:9]}, where release "
            f"run {made} made it, and HEAD {head[:9]} has moved on since, so it "
            f"is not the code released as {version}"
        )
        hint = (
            "to release HEAD, declare a new version under `releases:`; to push the tag "
            f"as it is: {push_later(loaded.root, loaded.runbook, version)}"
        )
        return TagElsewhere(msg, hint=hint)
    msg = (
        f"tag {tag} already exists on {tag_commit[:9]}, expected it absent or on HEAD "
        f"{head[:9]}; the code at HEAD is not the code that was released as {version}"
    )
    hint = f"release a new version, or delete the tag if it was a mistake: git tag -d {tag}"
    return TagElsewhere(msg, hint=hint)


def url_refusals(
    runbook: Runbook,
    env: str,
    items: Sequence[CheckItem],
    *,
    version: str | None,
    previous: str | None,
    kind: str,
) -> list[PreconditionFailed]:
    """The checks among `items` (`kind`: expected or rollback) whose URL `env` would refuse.

    `check` accepts an absolute URL whose host is on any environment's `allow_hosts`, since
    it cannot know where a check will run; a run knows, and refuses before its first step
    rather than at the check, after the deploy.
    """
    from drillbook.checks import CheckRunner

    runner = CheckRunner(
        runbook.environments[env],
        env_name=env,
        placeholders=placeholders(runbook, env, version or "", previous),
    )
    refusals: list[PreconditionFailed] = []
    for item in items:
        if isinstance(item.check, HttpCheck):
            try:
                runner.url_of(item.check)
            except PreconditionFailed as exc:
                exc.message = f"{kind} check {item.label} of {item.change}: {exc.message}"
                refusals.append(exc)
    return refusals


def require_check_urls(
    runbook: Runbook,
    env: str,
    items: Sequence[CheckItem],
    *,
    version: str | None,
    previous: str | None,
    kind: str,
) -> None:
    """Refuse, before anything runs, the first of `items` whose URL `env` would refuse."""
    for exc in url_refusals(runbook, env, items, version=version, previous=previous, kind=kind):
        exc.message += "; nothing ran"
        raise exc


def check_url_refusals(
    runbook: Runbook, env: str, release: Release, previous: str | None
) -> list[PreconditionFailed]:
    """The checks of `release`, expected and rollback, whose URL `env` would refuse."""
    return [
        exc
        for kind, items in (
            ("expected", expected_items(runbook, release)),
            ("rollback", rollback_items(runbook, release)),
        )
        for exc in url_refusals(
            runbook, env, items, version=release.version, previous=previous, kind=kind
        )
    ]


def _require_note_renders(
    loaded: LoadedRunbook, env: str, release: Release, previous: str | None, tag: str
) -> None:
    """Render the project's own rollback note template once, before the first step.

    drillbook's default is tested; a project's override is found broken (a syntax error, an
    undefined name) here, as bad input (exit 2), and not after the deploy and the tag.
    """
    from drillbook.render import render

    masker = masker_for(loaded)
    context = note_context(loaded, env, "(this run)", release, previous, tag, released=True)
    try:
        # Masked before the template sees it, as `write_note` does: the error of a template
        # that changed a secret (`upper`, `truncate`) would show what no masker knows.
        render(
            "rollback-note.md.j2",
            masker.mask_data(context),
            project_root=loaded.root,
            masker=masker,
        )
    except UsageError as exc:
        exc.message += "; found before the first step, nothing ran"
        raise


def own_outputs(root: Path, top: Path) -> tuple[str, ...]:
    """`OWN_OUTPUTS` as git names them: relative to the repository's top folder.

    A project may be a folder of a larger repository (a monorepo): its `notes/` are then
    `services/shop/notes/` to git.
    """
    try:
        prefix = root.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        return OWN_OUTPUTS
    if prefix in ("", "."):
        return OWN_OUTPUTS
    return tuple(f"{prefix}/{output}" for output in OWN_OUTPUTS)


def _raise(exc: Exception) -> None:
    raise exc


def _require_remote(root: Path, remote: str) -> None:
    """Refuse `--push` before the first step when there is no remote to push to."""
    if gitops.remote_url(root, remote) is None:
        msg = f"--push needs a git remote named {remote}, and the repository has none"
        hint = f"git remote add {remote} URL, or release without --push and push the tag later"
        raise PreconditionFailed(msg, hint=hint)


#: Seconds the preflight waits for origin to say where its tag is; the push has its own.
#: Short: origin not answering refuses nothing, it only leaves the question open.
REMOTE_PROBE_TIMEOUT = 10.0


def _origin_tag(
    root: Path, tag: str, head: str, version: str, refuse: Any
) -> gitops.RemoteTag | None:
    """Ask origin, read-only, where its `tag` is; refuse when it is not on `head`.

    git would refuse that push after the deploy and the local tag, and no retry could make it
    pass; origin not answering is no refusal: the push says so and the tag stays local.
    """
    if gitops.remote_url(root, "origin") is None:
        return None  # refused by _require_remote
    remote = gitops.remote_tag(root, tag, "origin", timeout=REMOTE_PROBE_TIMEOUT)
    if remote.answered and remote.commit is not None and remote.commit != head:
        msg = (
            f"origin already has tag {tag} on {remote.commit[:9]}, expected it absent or on "
            f"{head[:9]}: origin would refuse the push, and its {version} is other code"
        )
        hint = (
            "release a new version; or, if origin's tag is the mistake, delete it there "
            f"first: git push origin :refs/tags/{tag}"
        )
        refuse(_raise, PreconditionFailed(msg, hint=hint))
    return remote


def require_no_lost_tag(
    loaded: LoadedRunbook, low: str, high: str, *, also: Sequence[str] = (), doing: str
) -> None:
    """Refuse going from `high` back to `low` when a version between them was released, by
    the journal, and has lost its tag since: `doing` ("the rollback") would skip it, undo
    none of its changes, and prove `low` with checks that describe the skipped version.

    Candidates are the releases the runbook declares and `also`; one counts when a release
    run of it made its tag and kept it (one never tagged was never released, and is skipped
    as before).
    """
    from drillbook.state import released_commit

    runbook = loaded.runbook
    candidates = [*also, *(r.version for r in runbook.releases)]
    for version in dict.fromkeys(c for c in candidates if is_semver(c)):
        if not semver_key(low) < semver_key(version) < semver_key(high):
            continue
        tag = runbook.tag_name(version)
        if gitops.tag_commit(loaded.root, tag) is not None:
            continue  # tagged, yet not `low`: a pre-release below a final release
        commit = released_commit(loaded.root, runbook.service, version, tag)
        if commit is None:
            continue
        msg = (
            f"{version} was released, but its tag {tag} is missing: {doing} would skip "
            f"{version} and go back to {low}, the newest tagged version below {high}; "
            "nothing ran"
        )
        # Not "--to LOW": the checks that would prove LOW are those of the release above it,
        # which without the tag describe the skipped version.
        hint = (
            f"put the tag back on {commit[:12]}, where the release run of {version} made it: "
            f"git tag -a {tag} -m {version} {commit}; then run it again"
        )
        raise PreconditionFailed(msg, hint=hint)


def expected_items(runbook: Runbook, release: Release) -> list[CheckItem]:
    """The expected checks of every change of a release."""
    items = []
    for change in release.changes:
        for ref in change.expected.checks:
            items.append(
                CheckItem(check_label(ref, runbook), runbook.resolve(ref), change.id, change.owner)
            )
    return items


def rollback_items(runbook: Runbook, release: Release | None) -> list[CheckItem]:
    """The rollback checks of every change of a release (each named check once)."""
    items: list[CheckItem] = []
    seen: set[str] = set()
    for change in release.changes if release else []:
        for ref in change.rollback.checks:
            label = check_label(ref, runbook)
            if isinstance(ref, str) and ref in seen:
                continue
            seen.add(label)
            items.append(CheckItem(label, runbook.resolve(ref), change.id, change.owner))
    return items


def rollback_command(env: str, target: str | None) -> str:
    """The command a person types to roll back."""
    return f"drillbook rollback --env {env}" + (f" --to {target}" if target else "")


# --- rollback ---------------------------------------------------------------------------------


def run_rollback(
    session: RunSession,
    executor: Executor,
    release: Release | Sequence[Release] | None,
    *,
    from_version: str | None,
    target: str | None,
    reason: str,
    counted_apart: bool = True,
    proven_by: Release | None = None,
) -> tuple[bool, list[StepResult]]:
    """Undo `release` on the session's environment; True when the rollback checks pass.

    `release` may be several releases, newest first, when the rollback goes back past
    versions in between; the checks are those of `proven_by`, by default the oldest of them
    (see `plan.rollback_steps`). `counted_apart`: the progress lines count the rollback's
    steps on their own (a release that stopped); a rehearsal, whose plan holds them, counts
    them on.
    """
    runbook = session.loaded.runbook
    env = session.env
    releases = as_releases(release)
    proven_by = proven_by if proven_by is not None else (releases[-1] if releases else None)
    values = placeholders(runbook, env, from_version, target)
    steps = rollback_steps(runbook, releases, env, target, values, proven_by=proven_by)
    if counted_apart:
        executor.begin_phase("rollback", len(steps))
    else:
        executor.total += len(steps)
    # Whether running this rollback again is safe, as the changes it undoes say (a redeploy
    # alone, with no change known, claims nothing).
    safety = (
        {"retry_safe": all(c.rollback.retry_safe for r in releases for c in r.changes)}
        if releases
        else {}
    )
    session.event(
        "rollback_started",
        reason=reason,
        from_version=from_version,
        to_version=target,
        steps=[s.id for s in steps],
        **safety,
    )
    session.console.print(
        session.console.paint(
            f"rolling back {env} from {from_version or 'a version the journal does not know'} "
            + (
                f"to {target}"
                if target is not None
                else "by its changes' rollback steps (no earlier version to deploy)"
            )
            + f": {reason}",
            "yellow",
        )
    )
    results: list[StepResult] = []
    ok = True
    started = time.monotonic()
    specs = {step_id: (spec, r) for step_id, _, spec, r in rollback_specs(releases)}
    undo = undo_versions(releases, target)
    for step in steps:
        if step.kind == "checks":
            items = rollback_items(runbook, proven_by)
            result = executor.checks(step, items, version=target, previous=from_version)
        elif step.id == "rollback-deploy":
            deploy = runbook.deploy
            if deploy is None:  # rollback_steps plans a redeploy only when there is a deploy
                continue
            result = executor.command(step, deploy, version=target, previous=from_version)
            if result.ok:
                # Undone by hand, a rollback is undone by deploying what it went back from; the
                # rollback of a failed release or of a rehearsal is not for a person to undo.
                again = (
                    {"undo": f"drillbook deploy --env {session.env} --version {from_version}"}
                    if session.action == "rollback" and from_version
                    else {}
                )
                session.event(
                    "deployed", version=target, previous=from_version, by="rollback", **again
                )
        else:
            spec, undone = specs[step.id]
            version, previous = undo[undone.version]
            if previous is None and uses_placeholder(spec, "previous"):
                # A first release undone: `{previous}` would be empty, and `migrate --to ""`
                # may mean something else entirely than the version before. Not run.
                result = executor.run(step, lambda s=step: _no_previous(s))
            else:
                result = executor.command(step, spec, version=version, previous=previous)
        results.append(result)
        if not result.ok:
            ok = False
            break
    session.event(
        "rollback_finished",
        outcome="ok" if ok else "failed",
        from_version=from_version,
        to_version=target,
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return ok, results


def _no_previous(step: PlannedStep) -> StepResult:
    """A rollback step that needs `{previous}`, when there is no earlier version: not run."""
    return StepResult(
        step,
        "error",
        detail=(
            "not run: it uses {previous}, and there is no earlier released version to fill it "
            "with (the first release); undo it by hand, as the change's rollback says"
        ),
    )


def after_failed_rollback(
    loaded: LoadedRunbook,
    env: str,
    releases: Release | Sequence[Release] | None,
    results: Sequence[StepResult],
    *,
    from_version: str | None,
    target: str | None,
    deployed: bool = True,
) -> str:
    """What a failed rollback's headline adds: what the journal now says `env` runs, and what
    to type once the cause is fixed; empty when there is no version to go back to.

    Its redeploy finished: the journal says `target` runs, and the rollback run again would
    go one version further back. It stopped before: the journal still says `from_version`,
    and the rollback run again starts from its first step, which a change whose rollback is
    not safe to run twice forbids without a look first. `deployed` False: `from_version`'s
    own deploy failed, so the journal does not say it runs, and only a deploy puts `target`
    back.
    """
    if target is None:
        return ""
    if any(r.step.id == "rollback-deploy" and r.ok for r in results):
        further = previous_version(loaded.root, loaded.runbook, target)
        return (
            f". Its redeploy finished, so {env} runs {target} and its rollback checks fail: do "
            "not run the rollback again, it would go back further"
            + (f", from {target} to {further}" if further else "")
        )
    unsafe = {c.id for r in as_releases(releases) for c in r.changes if not c.rollback.retry_safe}
    ran = [r.step.change for r in results if r.step.change in unsafe]
    if not deployed:
        text = (
            f". The deploy of {from_version} failed, so the journal does not say {env} runs "
            f"it and `drillbook rollback` would not undo it: once the cause is fixed, "
            f"`drillbook deploy --env {env} --version {target}` puts {target} back"
        )
    else:
        said = (
            f". The journal still says {env} runs {from_version}: once"
            if from_version
            else ". Once"
        )
        text = (
            f"{said} the cause is fixed, `{rollback_command(env, target)}` runs the rollback "
            "again from its first step"
        )
    if ran and deployed:
        names = ", ".join(dict.fromkeys(str(change) for change in ran))
        text += (
            f", but the rollback of {names} is not safe to run twice: check what it did on "
            f"{env} first"
        )
    return text


# --- release ----------------------------------------------------------------------------------


def note_context(
    loaded: LoadedRunbook,
    env: str,
    run_id: str,
    release: Release,
    previous: str | None,
    tag: str,
    *,
    released: bool,
) -> dict[str, Any]:
    """What the rollback note template receives; `released`: a release writes it (after its
    tag), else `rollback-note` does, perhaps for a version never released."""
    from drillbook.plan import command_of

    runbook = loaded.runbook
    values = placeholders(runbook, env, release.version, previous)
    # As `drillbook rollback` runs each step: placeholders filled in per argument. A shell
    # step's text is shown as written, since its values arrive as DRILLBOOK_* variables; with
    # no earlier version `{previous}` stays as written too, a value the person must find.
    shown_values = values if previous else {k: v for k, v in values.items() if k != "previous"}

    def shown(step: Step) -> str:
        return describe_step(step) if step.shell else shlex.join(command_of(step, shown_values))

    steps = [shown(s) for s in (c.rollback.steps for c in reversed(release.changes)) for s in s]
    if runbook.deploy is not None and previous:
        redeploy = {**values, "version": previous}
        steps.append(shlex.join(command_of(runbook.deploy, redeploy)))
    checks = [
        f"{item.label}: {describe_check(item.check)}" for item in rollback_items(runbook, release)
    ]
    return {
        "service": runbook.service,
        "owner": runbook.owner,
        "escalation": runbook.escalation,
        "version": release.version,
        "previous": previous,
        "env": env,
        "tag": tag,
        "run_id": run_id,
        "released_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        # The note must not claim a release, or a tag, that is not there.
        "released": released,
        "tagged": released or gitops.tag_commit(loaded.root, tag) is not None,
        "retry_safe": all(c.rollback.retry_safe for c in release.changes),
        "rollback_command": rollback_command(env, previous),
        "steps": steps,
        "checks": checks,
        "changes": [
            {
                "id": c.id,
                "title": c.title,
                "owner": c.owner,
                "expected": c.expected.text,
                "rollback": c.rollback.text,
                "retry_safe": c.rollback.retry_safe,
                "steps": [shown(s) for s in c.rollback.steps],
            }
            for c in release.changes
        ],
        "logs": [
            {"name": log.name, "where": log.where.replace("{env}", env), "look_for": log.look_for}
            for log in runbook.logs
        ],
    }


def write_note(session: RunSession, release: Release, previous: str | None, tag: str) -> Path:
    """Render the rollback note of a release into notes/, atomically."""
    from drillbook.render import render_to

    path = session.root / note_path(session.loaded.runbook, release.version, session.env)
    try:
        context = note_context(
            session.loaded,
            session.env,
            session.run_id,
            release,
            previous,
            tag,
            released=session.action == "release",
        )
        # Masked before the template sees it, as the docs and the report are: masking the page
        # alone misses a secret that a project's template changed (`upper`, `truncate`,
        # `wordwrap`), and the page would show it.
        render_to(
            path,
            "rollback-note.md.j2",
            session.masker.mask_data(context),
            project_root=session.root,
            masker=session.masker,
        )
    except OSError as exc:
        # A full disk, or notes/ changed since the preflight: the atomic write left the old
        # note (or none), never half of one.
        msg = f"cannot write the rollback note to {path}: {exc.strerror or exc}"
        raise PreconditionFailed(
            msg, hint="free disk space or fix notes/, then write it again (the old note is intact)"
        ) from exc
    return path


def tag_message(
    runbook: Runbook,
    release: Release,
    previous: str | None,
    env: str = "staging",
    *,
    masker: Masker | None = None,
) -> str:
    """The annotated tag's message: the changes, their owners and the rollback summary.

    Masked with `masker`: a tag is pushed and kept for good, so a secret must not reach it.
    """

    def mask(text: str) -> str:
        # Unseen too: a control character inside a secret becomes U+FFFD below, leaving the
        # secret readable either side of it.
        return masker.mask_unseen(text) if masker is not None else text

    lines = [f"{runbook.service} {release.version}", ""]
    for change in release.changes:
        # A title is one line; a summary may be several, each under its label: a newline in
        # a title must not cut the change's owner off, or start a line of its own. Masked
        # before the reflow, which would change the whitespace of a secret's value.
        title, owner = _one_line(mask(change.title)), mask(change.owner)
        lines.append(f"- {change.id}: {title} (owner: {owner})")
        lines.append(f"  expected: {_indented(mask(change.expected.text))}")
        lines.append(f"  rollback: {_indented(mask(change.rollback.text))}")
    # As the rollback note says: with no earlier release, `drillbook rollback` has nowhere to go.
    undo = (
        rollback_command(env, previous)
        if previous
        else "no earlier released version (first release); undo each change as its rollback says"
    )
    lines += ["", f"Roll back: {undo}", ""]
    from drillbook.commands import as_typed

    return as_typed(mask("\n".join(lines)))


# C0 and C1 control characters and DEL: in a tag a NUL cuts the message short in `git log`,
# and an escape sequence repaints the terminal of whoever runs `git show`.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _one_line(text: str) -> str:
    """`text` with every run of whitespace, newlines too, as one space; controls as U+FFFD."""
    return _CONTROL.sub("\ufffd", " ".join(text.split()))


def _indented(text: str, indent: str = "    ") -> str:
    """`text` whose second and later lines are indented, blank ones left out; controls as
    U+FFFD."""
    lines = [_CONTROL.sub("\ufffd", line.strip()) for line in text.strip().splitlines()]
    return f"\n{indent}".join(line for line in lines if line)


def release_flow(
    session: RunSession,
    plan: Plan,
    release: Release,
    found: Preflight,
    *,
    auto_rollback: bool = True,
    done: frozenset[str] = frozenset(),
) -> Outcome:
    """Run a release plan; roll back on a failure after the deploy."""
    runbook = session.loaded.runbook
    executor = Executor(session, total=len(plan.steps), done=done)
    session.results = executor.results
    version = release.version
    previous = found.previous
    deployed = False
    created_tag = False
    artifacts: dict[str, str] = {}

    def failed_before_deploy(result: StepResult) -> Outcome:
        return Outcome(
            EXIT_CHECK_FAILED,
            "failed",
            f"release {version} stopped at {result.step.id}: {result.detail or result.outcome}; "
            "nothing was deployed",
            failed=result,
        )

    for step in plan.steps:
        if step.kind == "probe":
            executor.run(step, lambda s=step: StepResult(s, "ok", detail="checked"))
            continue
        if step.kind == "gate":
            spec = getattr(runbook.gates, step.id)
            result = executor.command(step, spec, version=version, previous=previous)
            if not result.ok:
                return failed_before_deploy(result)
            continue
        if step.kind == "config":
            result = executor.run(step, lambda s=step: _verify_config_step(session, s))
            if not result.ok:
                return failed_before_deploy(result)
            continue
        if step.kind == "deploy":
            if runbook.deploy is None:  # plan_release plans a deploy only when there is one
                continue
            result = executor.command(step, runbook.deploy, version=version, previous=previous)
            deployed = True  # even a failed deploy may have changed the environment
            if result.ok:
                # A resumed run's deploy is the first run's, and so is its `deployed` event,
                # unless that run was killed between the deploy's end and that event.
                if result.outcome != "done" or _deploy_unrecorded(session, version):
                    session.event(
                        "deployed",
                        version=version,
                        previous=previous,
                        by="release",
                        undo=rollback_command(session.env, previous)
                        if previous
                        else first_release_undo(c.rollback.text for c in release.changes),
                    )
            else:
                return _after_failure(
                    session, executor, release, previous, result, auto_rollback, deployed
                )
            continue
        if step.kind == "checks":
            items = expected_items(runbook, release)
            result = executor.checks(step, items, version=version, previous=previous)
            if not result.ok:
                if not deployed and "deploy" not in done:
                    return failed_before_deploy(result)
                return _after_failure(
                    session, executor, release, previous, result, auto_rollback, True
                )
            continue
        if step.kind == "tag":
            message = tag_message(runbook, release, previous, session.env, masker=session.masker)

            def do_tag(s: PlannedStep = step, message: str = message) -> StepResult:
                # The commit the preflight saw, the one the gates and checks judged.
                state = gitops.create_tag(session.root, found.tag, message, commit=found.head)
                commit = found.head
                outcome = "ok" if state == "created" else "done"
                return StepResult(
                    s,
                    outcome,
                    detail=f"{found.tag} {state} on {commit[:9]}",
                    data={"tag": found.tag, "commit": commit, "state": state},
                )

            result = _guarded(executor, step, do_tag)
            if not result.ok:
                return _after_failure(
                    session, executor, release, previous, result, auto_rollback, deployed
                )
            created_tag = result.data.get("state") == "created"
            artifacts["tag"] = found.tag
            continue
        if step.kind == "note":

            def do_note(s: PlannedStep = step) -> StepResult:
                path = write_note(session, release, previous, found.tag)
                rel = str(path.relative_to(session.root))
                return StepResult(s, "ok", detail=rel, data={"path": rel})

            result = _guarded(executor, step, do_note)
            if not result.ok:
                if created_tag:
                    gitops.delete_tag(session.root, found.tag)
                    session.event("tag_deleted", tag=found.tag, reason="the release did not finish")
                return _after_failure(
                    session, executor, release, previous, result, auto_rollback, deployed
                )
            # A note written by the run this one resumes is a step done: its path is the same.
            artifacts["note"] = result.data.get("path") or note_path(runbook, version, session.env)
            continue
        if step.kind == "push":
            result = push_step(session, executor, step, found.tag)
            if not result.ok:
                session.event("push_failed", tag=found.tag, detail=result.detail)
                again = push_later(session.root, runbook, version)
                return Outcome(
                    EXIT_CHECK_FAILED,
                    "push_failed",
                    f"release {version} is done on {session.env} and tagged {found.tag}, but "
                    f"the push failed; the tag stays local. Push it later with "
                    f"`{again}` (retry safe)",
                    failed=result,
                    artifacts=artifacts,
                )
            continue
    return Outcome(
        EXIT_OK,
        "ok",
        f"release {version} of {runbook.service} is done on {session.env}",
        artifacts=artifacts,
    )


def _deploy_unrecorded(session: RunSession, version: str) -> bool:
    """Whether the journal does not yet say that `version` runs on the session's environment,
    though the deploy of the run this one resumes finished.

    That run may have been killed after journaling the deploy's end and before its `deployed`
    event: without one, the journal would say the version before still runs, and `rollback`,
    `history` and a release run again would all act on that.
    """
    from drillbook.state import current_version

    service = session.loaded.runbook.service
    return current_version(session.root, session.env, service=service) != version


def push_later(root: Path, runbook: Runbook, version: str) -> str:
    """The command that pushes a release's tag later, as the person must type it: with
    `--service` when the project has several runbooks (else which one?). It works after
    HEAD has moved on too (see `tasks.steps.tag`)."""
    from drillbook.commands import for_service, several_runbooks

    command = f"drillbook tag --version {version} --push"
    return str(for_service(command, runbook.service)) if several_runbooks(root) else command


def push_step(session: RunSession, executor: Executor, step: PlannedStep, tag: str) -> StepResult:
    """Push the release tag to origin as a step: a failure keeps the tag local, and a stop of
    the run (Ctrl-C, SIGTERM) ends the push at once, recorded as interrupted."""
    from drillbook.leftovers import RUN_VARIABLE

    def do_push() -> StepResult:
        pushed = gitops.push_tag(
            session.root,
            tag,
            stop=session.stop,
            on_start=executor.command_started(step),
            env={RUN_VARIABLE: session.run_id},
            mask=session.masker.mask_unseen,
        )
        if pushed.already:
            return StepResult(step, "done", detail=pushed.detail)
        if pushed.ok:
            return StepResult(step, "ok", detail=f"pushed {tag}")
        if pushed.outcome == "interrupted":
            return StepResult(step, "interrupted", detail=pushed.detail)
        return StepResult(
            step,
            "failed",
            detail=f"push of {tag} failed; the tag stays local: {pushed.detail}",
            output_tail=pushed.output_tail,
        )

    return executor.run(step, do_push)


def _guarded(executor: Executor, step: PlannedStep, fn: Any) -> StepResult:
    """Run an in-process step; an error becomes a failed step rather than a crash, or an
    interrupted one when the run was stopped while the step ran."""
    from drillbook.errors import DrillbookError

    def ended(detail: str) -> StepResult:
        signum = executor.session.stop.signum
        if signum is None:
            return StepResult(step, "failed", detail=detail)
        # Ctrl-C reaches the whole foreground process group: git (and a gpg asking for a
        # passphrase) dies of it and the step fails. That is the interruption, to be resumed,
        # not a failure of the release to roll back.
        name = signal.Signals(signum).name
        return StepResult(step, "interrupted", detail=f"interrupted by {name}: {detail}")

    def action() -> StepResult:
        try:
            return fn()
        except DrillbookError as exc:
            return ended(exc.message)
        except Exception as exc:  # a project's template, a full disk, a bug
            # After the deploy a crash would leave the release half-done; a failed step rolls
            # it back and says why.
            return ended(f"{type(exc).__name__}: {exc}")

    return executor.run(step, action)


#: How many failed config rules a release shows and keeps in its journal (their number is
#: kept whole): a file of a hundred thousand bad keys made a journal line of megabytes, and
#: `verify-config` lists every one.
MAX_KEPT_FINDINGS = 50
#: ... and how much of each: a key's name is as long as its file lets it be.
MAX_FINDING_CHARS = 1000


def _kept_findings(session: RunSession, failures: Sequence[Any]) -> dict[str, Any]:
    """The journal's (and the summary's) part of verify-config's failures: the first
    `MAX_KEPT_FINDINGS`, each cut to `MAX_FINDING_CHARS`, their total, and what was left out."""
    from drillbook.configcheck import format_finding

    kept = []
    for finding in failures[:MAX_KEPT_FINDINGS]:
        # Masked before the cut: a secret cut in two would leave a head no masker knows.
        text = session.masker.mask(format_finding(finding))
        if len(text) > MAX_FINDING_CHARS:
            text = text[:MAX_FINDING_CHARS] + f"... ({len(text) - MAX_FINDING_CHARS} more chars)"
        kept.append(text)
    data: dict[str, Any] = {"findings": kept, "findings_total": len(failures)}
    if len(failures) > len(kept):
        data["findings_left_out"] = (
            f"{len(failures) - len(kept)} more, not kept here; "
            f"`drillbook verify-config --env {session.env}` lists every one"
        )
    return data


def _short(key: str, limit: int = 80) -> str:
    """A key's name as a headline names it: whole, or its start when it is longer."""
    return key if len(key) <= limit else key[:limit] + "..."


def _verify_config_step(session: RunSession, step: PlannedStep) -> StepResult:
    from drillbook.configcheck import verify_config
    from drillbook.errors import DrillbookError

    try:
        report = verify_config(session.loaded.runbook, session.env, session.root)
    except DrillbookError as exc:
        return StepResult(step, "failed", detail=str(exc))
    failures = list(report.failures)
    data = _kept_findings(session, failures) if failures else {}
    for text in data.get("findings", []):
        session.console.print(f"        {session.console.outcome('fail')} {text}")
    if "findings_left_out" in data:
        session.console.print(f"        ... and {data['findings_left_out']}")
    if failures:
        # The detail becomes the run's headline and history: it names what failed, and the
        # findings (each with expected and got) follow in the digest and the journal.
        named = ", ".join(f"{_short(f.key)} ({f.rule})" for f in failures[:5])
        more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
        return StepResult(
            step,
            "failed",
            detail=(
                f"{len(failures)} config rule{'s' if len(failures) != 1 else ''} failed: "
                f"{named}{more}"
            ),
            data=data,
        )
    return StepResult(step, "ok", detail=f"{len(report.findings)} rules pass")


def _after_failure(
    session: RunSession,
    executor: Executor,
    release: Release,
    previous: str | None,
    failed: StepResult,
    auto_rollback: bool,
    deployed: bool,
) -> Outcome:
    version = release.version
    env = session.env
    if not deployed:
        return Outcome(
            EXIT_CHECK_FAILED,
            "failed",
            f"release {version} stopped at {failed.step.id}; nothing was deployed",
            failed=failed,
        )
    if not auto_rollback:
        if failed.step.kind == "deploy" and previous is not None:
            # The deploy itself failed: the journal still says `previous` runs (so `rollback`
            # would refuse to go "down" to it), and the environment may run either version.
            state = f"{env} may run {previous} or a half-deployed {version}. Put {previous} back"
            undo = f"drillbook deploy --env {env} --version {previous}"
        elif previous is None:
            # `drillbook rollback` has no earlier version to go to: the changes' own words.
            return Outcome(
                EXIT_ROLLBACK_FAILED,
                "failed",
                f"release {version} failed at {failed.step.id} on {env} and was NOT rolled "
                f"back (--no-auto-rollback); {_left_as_is(env, version, failed)}, the first "
                f"release, with no earlier version to go back to. {_undo_by_hand(release)}",
                failed=failed,
            )
        else:
            state, undo = f"{env} runs {version}. Roll back", rollback_command(env, previous)
        return Outcome(
            EXIT_ROLLBACK_FAILED,
            "failed",
            f"release {version} failed at {failed.step.id} on {env} and was NOT rolled back "
            f"(--no-auto-rollback); {state} with `{undo}`",
            failed=failed,
        )
    if previous is None and not rollback_specs([release]):
        # The first release, and no change says how to undo itself with a step: there is
        # nothing to deploy instead and nothing to run. Calling that rolled back (exit 4) would
        # tell the person on call that staging is fine when it runs what just failed.
        return Outcome(
            EXIT_ROLLBACK_FAILED,
            "failed",
            f"release {version} failed at {failed.step.id} on {env} and could not be rolled "
            f"back: it is the first release, so there is no earlier version to deploy, and its "
            f"changes have no rollback steps; {_left_as_is(env, version, failed)}. "
            f"{_undo_by_hand(release)}",
            failed=failed,
        )
    ok, results = run_rollback(
        session,
        executor,
        release,
        from_version=version,
        target=previous,
        reason=f"{failed.step.id} failed: {failed.detail or failed.outcome}",
    )
    if ok:
        how = (
            f"{env} was rolled back to {previous}"
            if previous is not None
            else f"{env} was rolled back by its changes' rollback steps (it is the first "
            "release: there is no earlier version to deploy)"
        )
        return Outcome(
            EXIT_ROLLED_BACK,
            "rolled_back",
            f"release {version} failed at {failed.step.id}; {how} and the rollback checks pass",
            failed=failed,
            rollback=results,
        )
    last = results[-1] if results else None
    then = after_failed_rollback(
        session.loaded,
        env,
        release,
        results,
        from_version=version,
        target=previous,
        deployed=failed.step.kind != "deploy",
    )
    return Outcome(
        EXIT_ROLLBACK_FAILED,
        "rollback_failed",
        f"release {version} failed at {failed.step.id} AND the rollback failed at "
        f"{last.step.id if last else 'its start'}: {env} needs a person now{then}",
        failed=failed,
        rollback=results,
    )


def _left_as_is(env: str, version: str, failed: StepResult) -> str:
    """Where a first release that nothing rolled back left `env`."""
    if failed.step.kind == "deploy":
        return f"{env} may run a half-deployed {version}"
    return f"{env} runs {version}"


def _undo_by_hand(release: Release) -> str:
    """The changes' own rollback words, for a release no command can undo."""
    words = "; ".join(f"{c.id}: {c.rollback.text}" for c in release.changes)
    return f"Undo it as its rollback says: {words}"


def all_checks_of(release: Release) -> Sequence[str]:
    """Ids of the changes of a release, for messages."""
    return [c.id for c in release.changes]
