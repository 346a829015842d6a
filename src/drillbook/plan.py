"""The ordered steps of an action, computed without touching anything.

`plan` is pure: runbook + action + environment + version in, steps out. `drillbook plan` and
`release --dry-run` print it; the executor runs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from drillbook.model import Change, Release, Runbook, RunCheck, Step

Kind = Literal["probe", "gate", "config", "deploy", "checks", "rollback", "tag", "note", "push"]


@dataclass(frozen=True)
class PlannedStep:
    """One step of a plan."""

    id: str
    kind: Kind
    title: str
    changes: bool
    argv: tuple[str, ...] | None = None
    detail: str = ""
    owner: str | None = None
    change: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The step as plain data, for JSON output and the journal."""
        return {
            "step": self.id,
            "kind": self.kind,
            "title": self.title,
            "changes": self.changes,
            "argv": list(self.argv) if self.argv is not None else None,
            "detail": self.detail,
            "owner": self.owner,
            "change": self.change,
        }


@dataclass(frozen=True)
class Plan:
    """What an action will do, in order."""

    action: str
    service: str
    env: str
    version: str | None
    previous: str | None
    steps: tuple[PlannedStep, ...]
    notes: tuple[str, ...] = field(default=())

    def step(self, step_id: str) -> PlannedStep:
        """The step with that id."""
        return next(s for s in self.steps if s.id == step_id)


def placeholders(
    runbook: Runbook, env: str, version: str | None, previous: str | None
) -> dict[str, str]:
    """The values of `{env}`, `{version}`, `{previous}`, `{url}` and `{service}`."""
    environment = runbook.environments.get(env)
    return {
        "env": env,
        "version": version or "",
        "previous": previous or "",
        "url": environment.url if environment else "",
        "service": runbook.service,
    }


def fill(argv: Sequence[str], values: Mapping[str, str]) -> tuple[str, ...]:
    """Placeholders filled in per argument; other braces stay as they are."""
    out = []
    for arg in argv:
        text = arg
        for name, value in values.items():
            text = text.replace("{" + name + "}", value)
        out.append(text)
    return tuple(out)


def command_of(step: Step, values: Mapping[str, str]) -> tuple[str, ...]:
    """The argument list a step runs (a shell step runs `sh -c TEXT`, values in the env)."""
    if isinstance(step.run, str):
        return ("sh", "-c", step.run)
    return fill(step.run, values)


def fill_env(env: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    """A step's own environment variables with placeholders filled in each value, as a command
    check's are; the names stay as written."""
    return {name: fill((value,), values)[0] for name, value in env.items()}


def uses_placeholder(step: Step | RunCheck, name: str) -> bool:
    """Whether a step's (or a command check's) command or its own `env:` values use placeholder
    `name` (a shell command: its `DRILLBOOK_*` variable in the text)."""
    if isinstance(step.run, str):
        texts = [step.run.replace(f"DRILLBOOK_{name.upper()}", "{" + name + "}")]
    else:
        texts = list(step.run)
    return any("{" + name + "}" in text for text in (*texts, *step.env.values()))


def step_env(values: Mapping[str, str]) -> dict[str, str]:
    """The DRILLBOOK_* environment variables every command receives."""
    return {f"DRILLBOOK_{name.upper()}": value for name, value in values.items()}


def _gate_steps(runbook: Runbook, values: Mapping[str, str]) -> list[PlannedStep]:
    steps = []
    for name in ("lint", "unit"):
        gate = getattr(runbook.gates, name)
        if gate is None:
            continue
        argv = command_of(gate, values)
        steps.append(
            PlannedStep(name, "gate", f"{name}: {' '.join(argv)}", changes=False, argv=argv)
        )
    return steps


def rollback_steps(
    runbook: Runbook,
    release: Release | Sequence[Release] | None,
    env: str,
    target: str | None,
    values: Mapping[str, str],
    *,
    proven_by: Release | None = None,
) -> list[PlannedStep]:
    """Undo a release: each change's rollback steps in reverse order, the redeploy, the checks.

    `release` may be several, newest first (a rollback past versions in between): their steps
    run newest first. The checks are those of `proven_by`, by default the oldest undone: its
    rollback is the one that leads to `target`, so its checks describe `target`.
    """
    steps: list[PlannedStep] = []
    releases = as_releases(release)
    proven_by = proven_by if proven_by is not None else (releases[-1] if releases else None)
    undo = undo_versions(releases, target)
    for step_id, change, step, owner_release in rollback_specs(releases):
        version, previous = undo[owner_release.version]
        argv = command_of(step, {**values, "version": version, "previous": previous or ""})
        title = step.name or " ".join(argv)
        steps.append(
            PlannedStep(
                step_id,
                "rollback",
                f"rollback step of {change.id}: {title}",
                changes=True,
                argv=argv,
                owner=change.owner,
                change=change.id,
            )
        )
    if runbook.deploy is not None and target is not None:
        redeploy_values = {**values, "version": target, "previous": values.get("version", "")}
        argv = command_of(runbook.deploy, redeploy_values)
        steps.append(
            PlannedStep(
                "rollback-deploy",
                "deploy",
                f"deploy {target} to {env} again",
                changes=True,
                argv=argv,
            )
        )
    count = sum(len(c.rollback.checks) for c in proven_by.changes) if proven_by else 0
    steps.append(
        PlannedStep(
            "rollback-checks",
            "checks",
            f"rollback checks on {env} ({count} check{'s' if count != 1 else ''})",
            changes=False,
        )
    )
    return steps


def plan_release(
    runbook: Runbook,
    *,
    env: str,
    version: str,
    previous: str | None,
    push: bool = False,
    tag_exists_here: bool = False,
    pushed_here: bool = False,
) -> Plan:
    """The release checklist in order, stopping at the first failure when run."""
    release = runbook.release(version)
    values = placeholders(runbook, env, version, previous)
    steps: list[PlannedStep] = [
        PlannedStep(
            "preflight",
            "probe",
            "preflight: git repository, clean tree, identity, tag, lock, config file, check URLs",
            changes=False,
        ),
        *_gate_steps(runbook, values),
    ]
    if runbook.config is not None and runbook.environments[env].config is not None:
        steps.append(
            PlannedStep(
                "verify-config",
                "config",
                f"verify-config: {runbook.environments[env].config} against the rules",
                changes=False,
            )
        )
    if runbook.deploy is not None:
        argv = command_of(runbook.deploy, values)
        steps.append(
            PlannedStep("deploy", "deploy", f"deploy {version} to {env}", changes=True, argv=argv)
        )
    count = sum(len(c.expected.checks) for c in release.changes) if release else 0
    steps.append(
        PlannedStep(
            "integration",
            "checks",
            f"expected checks of {version} on {env} ({count} check{'s' if count != 1 else ''})",
            changes=False,
        )
    )
    tag = runbook.tag_name(version)
    steps.append(
        PlannedStep(
            "tag",
            "tag",
            f"tag {tag}" + (" (exists on HEAD: done)" if tag_exists_here else ""),
            changes=not tag_exists_here,
        )
    )
    steps.append(
        PlannedStep(
            "rollback-note",
            "note",
            f"rollback note: {note_path(runbook, version, env)}",
            changes=True,
        )
    )
    if push:
        title = f"push tag {tag} to origin" + (
            " (origin has it on HEAD: done)" if pushed_here else ""
        )
        steps.append(PlannedStep("push", "push", title, changes=not pushed_here))
    notes = []
    if runbook.deploy is not None:
        notes.append(
            f"if a step after the deploy fails, the release rolls back on its own: each change's "
            f"rollback steps, then {previous or 'no earlier version'} deployed again, then the "
            "rollback checks"
        )
    if previous is None:
        notes.append(
            f"no released version below {version} was found in git tags; "
            "an automatic rollback can only run the changes' rollback steps"
        )
        needs = [
            step_id
            for step_id, _, spec, _ in rollback_specs([release] if release else [])
            if uses_placeholder(spec, "previous")
        ]
        if needs:
            notes.append(
                f"rollback steps that use {{previous}} would not run, with no earlier version "
                f"to fill it with: {', '.join(needs)}"
            )
    writers = _writing_checks(runbook, release)
    if writers:
        # The step is marked as reading, like every check; these may not be.
        more = f" and {len(writers) - 3} more" if len(writers) > 3 else ""
        notes.append(
            f"expected checks that may change {env} (a POST or a command): "
            f"{', '.join(writers[:3])}{more}"
        )
    return Plan("release", runbook.service, env, version, previous, tuple(steps), tuple(notes))


def _writing_checks(runbook: Runbook, release: Release | None) -> list[str]:
    """The expected checks of `release` that may change the environment: a POST, a command."""
    import shlex

    from drillbook.model import HttpCheck, RunCheck

    found = []
    for change in release.changes if release else []:
        for ref in change.expected.checks:
            check = runbook.resolve(ref)
            if isinstance(check, HttpCheck) and check.method in ("GET", "HEAD"):
                continue
            if isinstance(ref, str) or check.name:
                found.append(ref if isinstance(ref, str) else str(check.name))
            elif isinstance(check, RunCheck):
                run = check.run if isinstance(check.run, str) else shlex.join(check.run)
                found.append(f"run {run[:40]}{'...' if len(run) > 40 else ''}")
            else:
                found.append(f"{check.method} {check.target}")
    return found


def rollback_specs(releases: Sequence[Release]) -> list[tuple[str, Change, Step, Release]]:
    """Every rollback step of `releases` (newest first), each change's in reverse order, with
    its step id: `rollback-step:CHANGE:N`, and the version in front when an earlier release
    already used that id (a change id may come back in a later release); and its release."""
    out: list[tuple[str, Change, Step, Release]] = []
    seen: set[str] = set()
    for release in releases:
        for change in reversed(release.changes):
            for i, step in enumerate(change.rollback.steps):
                step_id = f"rollback-step:{change.id}:{i + 1}"
                if step_id in seen:
                    step_id = f"rollback-step:{release.version}:{change.id}:{i + 1}"
                seen.add(step_id)
                out.append((step_id, change, step, release))
    return out


def undo_versions(
    releases: Sequence[Release], target: str | None
) -> dict[str, tuple[str, str | None]]:
    """The `{version}` and `{previous}` the rollback steps of each of `releases` (newest first)
    see: the release itself and the version it goes back to, the next older one undone or, for
    the oldest, `target`. Going back past 1.1.0 from 1.2.0 to 1.0.0, 1.1.0's steps undo 1.1.0
    to 1.0.0, as its rollback note says, not 1.2.0."""
    chain: list[str | None] = [r.version for r in releases] + [target]
    return {r.version: (r.version, chain[i + 1]) for i, r in enumerate(releases)}


def as_releases(release: Release | Sequence[Release] | None) -> list[Release]:
    """One release, several, or none, as a list (newest first when several)."""
    if release is None:
        return []
    if isinstance(release, Release):
        return [release]
    return list(release)


def note_path(runbook: Runbook, version: str, env: str = "staging") -> str:
    """Where the rollback note of a version on `env` is written, relative to the project.

    Staging's note keeps the short name; another environment's has its own file, so a note
    rendered for production never overwrites the one the staging release wrote.
    """
    where = "" if env == "staging" else f"-{env}"
    return f"notes/{runbook.service}-{version}{where}-rollback.md"
