"""One service's docs page: what it shows, gathered from the runbook, the journal and git tags.

`service_context` returns plain data (dicts, lists, text) for the `docs-service.*.j2` templates;
`docs` renders it. Nothing here writes a file.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from drillbook import docs_chart
from drillbook.describe import check_label, describe_check
from drillbook.model import Release, Runbook
from drillbook.plan import note_path
from drillbook.runbook import LoadedRunbook
from drillbook.versions import highest_below, semver_key

if TYPE_CHECKING:
    from drillbook.state import CurrentVersions

#: How many journal entries a service page lists under "what changed recently".
RECENT_LIMIT = 15
#: How many rehearsals the time-to-restore chart shows (the newest).
CHART_LIMIT = 24


# --- small words ------------------------------------------------------------------------------


def anchor(*parts: str) -> str:
    """An HTML id from parts: `release-1-2-0`, `change-1-2-0-audit-log`."""
    text = "-".join(parts).lower()
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


class Anchors:
    """The ids of one page, each given once: `anchor`, then `-2`, `-3` for a later one that
    reads the same (releases `1.0.0-rc.1` and `1.0.0-rc-1`, changes `Audit` and `audit`), so
    that every link lands on its own part of the page."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def __call__(self, *parts: str) -> str:
        base = found = anchor(*parts)
        count = 1
        while found in self._taken:
            count += 1
            found = f"{base}-{count}"
        self._taken.add(found)
        return found


def when(ts: Any) -> str | None:
    """A journal time (ISO text or epoch seconds) as `2026-11-23 23:29:14 UTC`."""
    moment = _moment(ts)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else None


def _moment(ts: Any) -> datetime | None:
    if isinstance(ts, bool) or ts is None:
        return None
    if isinstance(ts, int | float):
        try:
            # A journal of another writer may count milliseconds, or hold NaN: no moment.
            return datetime.fromtimestamp(ts, UTC)
        except (ValueError, OverflowError, OSError):
            return None
    if isinstance(ts, str):
        try:
            moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _sort_key(ts: Any) -> float:
    moment = _moment(ts)
    return moment.timestamp() if moment else 0.0


def millis(ms: Any) -> str | None:
    """Milliseconds as a person reads them: `850 ms`, `1.2 s`, `2 min 5 s`."""
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        return None
    if not math.isfinite(ms) or ms < 0:  # NaN, Infinity or a negative time: not a time taken
        return None
    if ms < 1000:
        return f"{round(ms)} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def relative_link(target: Path, out: Path) -> str:
    """A URL path from the out folder to `target`, percent-encoded, with `/` separators."""
    rel = os.path.relpath(target, out)
    return quote(Path(rel).as_posix())


# --- facts gathered once per project -----------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What the journal and git say, read once for every page of a project."""

    entries: list[Any]
    rehearsals: list[dict[str, Any]]
    current: dict[tuple[str, str], str | None]
    previous: Callable[[LoadedRunbook, str], str | None]
    #: Every deploy the journal records, for a (service, env) not in `current` yet.
    deployed: CurrentVersions | None = None
    #: Whether the project holds several runbooks: its commands then name the service.
    several: bool = False
    #: Whether `previous` comes from git tags for a runbook, rather than from its releases
    #: standing in for them (no repository, no tag yet).
    tagged: Callable[[LoadedRunbook], bool] = lambda loaded: False

    def current_of(self, service: str, env: str) -> str | None:
        """The version deployed to `env` for `service`, by the journal."""
        key = (service, env)
        if key not in self.current and self.deployed is not None:
            self.current[key] = self.deployed.of(env, service)
        return self.current.get(key)

    def deploy_recorded(self, service: str, env: str) -> bool:
        """Whether the journal records a deploy of `service` to `env`, its version known or not."""
        if self.current_of(service, env) is not None:
            return True
        return self.deployed is not None and self.deployed.recorded(env, service)


def gather(root: Path) -> Facts:
    """Read the journal (through `history` and `state`) and the git tags, once for every page."""
    from drillbook import history
    from drillbook.commands import several_runbooks
    from drillbook.state import CurrentVersions

    tag_versions = _tag_lister(root)

    def previous(loaded: LoadedRunbook, version: str) -> str | None:
        return previous_version(loaded.runbook, version, tag_versions(loaded.runbook))

    return Facts(
        entries=list(history.entries(root, since=None, env=None)),
        rehearsals=list(history.rehearsals(root)),
        current={},
        previous=previous,
        deployed=CurrentVersions(root),
        several=several_runbooks(root),
        tagged=lambda loaded: bool(tag_versions(loaded.runbook)),
    )


def _tag_lister(root: Path) -> Callable[[Runbook], list[str] | None]:
    """Released versions from git tags, or None when the project is not in a git repository.

    The project may be a folder of a larger repository (`services/shop/`): its tags are the
    repository's, wherever `.git` is above it.
    """
    absolute = root.absolute()
    if not any((folder / ".git").exists() for folder in (absolute, *absolute.parents)):
        return lambda runbook: None
    from drillbook import gitops
    from drillbook.errors import DrillbookError

    try:
        names = gitops.tags(root)
    except DrillbookError:
        return lambda runbook: None

    def versions(runbook: Runbook) -> list[str]:
        prefix, _, suffix = runbook.tag_format.partition("{version}")
        found = []
        for name in names:
            if name.startswith(prefix) and name.endswith(suffix):
                found.append(name[len(prefix) : len(name) - len(suffix)])
        return found

    return versions


def previous_version(runbook: Runbook, version: str, released: list[str] | None) -> str | None:
    """What `version` rolls back to: the highest released version below it.

    Released versions come from git tags, as for `drillbook rollback`; outside a git repository
    (or before the first tag) the runbook's own releases stand in for them.
    """
    candidates = [v for v in released or [] if semver_key(v) != (-1,)]
    if not candidates:
        candidates = [r.version for r in runbook.releases]
    return highest_below(candidates, version)


# --- one service -------------------------------------------------------------------------------


def _of_service(item: Any, service: str) -> bool:
    got = item.get("service") if isinstance(item, dict) else getattr(item, "service", None)
    return got in (None, service)


def _command(argv: Sequence[str]) -> str:
    if len(argv) == 3 and argv[:2] == ("sh", "-c"):
        return argv[2]
    return shlex.join(argv)


def _rollback(loaded: LoadedRunbook, release: Release, previous: str | None) -> dict[str, Any]:
    """The exact rollback of a release: the command per environment, its steps and checks."""
    from drillbook.plan import placeholders, rollback_steps
    from drillbook.release import rollback_command, rollback_items

    runbook = loaded.runbook
    shown_env = "staging" if "staging" in runbook.environments else next(iter(runbook.environments))
    values = placeholders(runbook, shown_env, release.version, previous)
    steps: list[dict[str, Any]] = []
    redeploy = None
    for step in rollback_steps(runbook, release, shown_env, previous, values):
        if step.kind == "rollback" and step.argv is not None:
            steps.append(
                {"owner": step.owner, "change": step.change, "command": _command(step.argv)}
            )
        elif step.id == "rollback-deploy" and step.argv is not None:
            redeploy = _command(step.argv)
    return {
        "env": shown_env,
        "to": previous,
        "retry_safe": all(c.rollback.retry_safe for c in release.changes),
        "commands": [
            {"env": env, "command": rollback_command(env, previous)} for env in _env_order(runbook)
        ],
        "steps": steps,
        "redeploy": redeploy,
        "checks": [
            {
                "label": item.label if item.label in runbook.checks or item.check.name else None,
                "words": describe_check(item.check),
            }
            for item in rollback_items(runbook, release)
        ],
    }


def _env_order(runbook: Runbook) -> list[str]:
    """Staging first, then the others as the runbook lists them."""
    envs = list(runbook.environments)
    return sorted(envs, key=lambda e: e != "staging")


def _label(ref: Any, runbook: Runbook) -> str | None:
    """A check's name when it has one; an inline check's words already say what it does."""
    if isinstance(ref, str) or getattr(ref, "name", None):
        return check_label(ref, runbook)
    return None


def _checks(runbook: Runbook, refs: Iterable[Any]) -> list[dict[str, Any]]:
    return [
        {"label": _label(ref, runbook), "words": describe_check(runbook.resolve(ref))}
        for ref in refs
    ]


def _rehearsal(item: dict[str, Any], loaded: LoadedRunbook, out: Path) -> dict[str, Any]:
    reports = []
    for key, label in (("report_md", "report"), ("report_json", "JSON")):
        href = _existing_link(item.get(key), loaded.root, out)
        if href:
            reports.append({"label": label, "href": href})
    sha = item.get("runbook_sha256")
    # The event is read as the journal holds it: a field of another type (a newer drillbook,
    # a hand edit) reads as not known, not as a page that cannot be made.
    outcome = _text(item.get("outcome"))
    failed = item.get("failed_checks")
    failed = failed if isinstance(failed, list) else []
    return {
        "run": _text(item.get("run")),
        "when": when(item.get("ts")),
        "env": _text(item.get("env")),
        "version": _text(item.get("version")),
        "previous": _text(item.get("previous")),
        "outcome": _words(outcome),
        "outcome_raw": outcome,
        "ok": outcome == "ok",
        "restore": millis(item.get("restore_ms")),
        "total": millis(item.get("total_ms")),
        "failed_checks": [check for check in failed if isinstance(check, str)],
        "runbook_changed": isinstance(sha, str) and bool(sha) and sha != loaded.sha256,
        "reports": reports,
    }


def _text(value: Any) -> str | None:
    """A journal field that should hold text: the text, or None."""
    return value if isinstance(value, str) else None


def _existing_link(path: Any, root: Path, out: Path) -> str | None:
    """A relative link to a file the journal names, only when that file exists."""
    if not isinstance(path, str) or not path:
        return None
    target = Path(path) if Path(path).is_absolute() else root / path
    return relative_link(target, out) if target.is_file() else None


#: A failed rehearsal's outcome: what it found, and what to fix first.
_FAILED = {
    "failed_checks_restored": ("found it failing its checks; the rollback worked", "Fix it"),
    "return_failed": (
        "proved its rollback, but the version staging ran before failed when put back",
        "Fix that version's deploy",
    ),
    # A step of the rollback, its redeploy or its checks (`rehearse.OUTCOME_WORDS`).
    "restore_failed": (
        "ended with a rollback that failed, a step or its checks",
        "Fix the rollback",
    ),
    # The baseline deploys the previous version and proves it with the rollback checks: the
    # deploy, or the checks (staging unhealthy, or checks that do not describe that version).
    "baseline_failed": (
        "stopped at its baseline: the previous version did not deploy or did not pass the "
        "rollback checks, so the version itself was never deployed",
        "Fix the environment or the rollback checks",
    ),
}


def _warning(
    release: Release,
    previous: str | None,
    rehearsal: dict[str, Any] | None,
    *,
    tagged: bool = False,
) -> dict[str, str] | None:
    """What is wrong with a release's rehearsal, and the command that fixes it; None if fine."""
    command = f"drillbook rehearse --version {release.version}"
    seen = f" ({rehearsal['when']})" if rehearsal and rehearsal["when"] else ""
    if rehearsal is None:
        if previous is None:
            return None  # the first release has nothing older to rehearse a rollback to
        text = f"{release.version} has never been rehearsed: its rollback is untested."
    elif not rehearsal["ok"]:
        changed = " The runbook changed since, too." if rehearsal["runbook_changed"] else ""
        found, fix = _FAILED.get(
            rehearsal["outcome_raw"], (f"ended {rehearsal['outcome']}", "Fix what it found")
        )
        text = (
            f"The last rehearsal of {release.version}{seen} {found}.{changed} "
            f"{fix}, then rehearse again."
        )
    elif tagged and previous is not None and rehearsal["previous"] not in (None, previous):
        # A version released in between since (or a tag taken away): the rollback proved went
        # elsewhere, with other steps and checks, than `drillbook rollback` goes today. Only
        # by tags: the runbook's releases standing in for them say nothing of what was.
        text = (
            f"{release.version} was last rehearsed{seen} rolling back to "
            f"{rehearsal['previous']}, but its rollback now goes to {previous}: that rollback "
            "is untested."
        )
    elif rehearsal["runbook_changed"]:
        text = (
            f"The runbook changed since {release.version} was last rehearsed{seen}: "
            "the rollback it proved may not be today's."
        )
    else:
        return None
    return {"text": text, "command": command}


def service_context(loaded: LoadedRunbook, facts: Facts, out: Path) -> dict[str, Any]:
    """Everything a service page shows, as plain data for its templates."""
    from drillbook.history import UNFINISHED

    runbook = loaded.runbook
    service = runbook.service
    entries = [e for e in facts.entries if _of_service(e, service)]
    rehearsals = sorted(
        (r for r in facts.rehearsals if _of_service(r, service)),
        key=lambda r: _sort_key(r.get("ts")),
    )
    by_version: dict[str, dict[str, Any]] = {}
    for item in rehearsals:  # oldest first, so the last one seen wins
        if isinstance(item.get("version"), str):
            by_version[item["version"]] = item
    current = {env: facts.current_of(service, env) for env in runbook.environments}

    releases = []
    warnings = []
    ids = Anchors()
    release_ids: dict[str, str] = {}
    tagged = facts.tagged(loaded)
    for release in sorted(runbook.releases, key=lambda r: semver_key(r.version), reverse=True):
        previous = facts.previous(loaded, release.version)
        found = by_version.get(release.version)
        rehearsal = _rehearsal(found, loaded, out) if found else None
        warning = _warning(release, previous, rehearsal, tagged=tagged)
        rel_anchor = release_ids[release.version] = ids("release", release.version)
        if warning:
            warnings.append({**warning, "anchor": rel_anchor})
        note = loaded.root / note_path(runbook, release.version)
        releases.append(
            {
                "version": release.version,
                "anchor": rel_anchor,
                "notes": release.notes,
                "previous": previous,
                "running_on": [
                    env for env, version in current.items() if version == release.version
                ],
                "rollback": _rollback(loaded, release, previous),
                "note_href": relative_link(note, out) if note.is_file() else None,
                "note_path": note.relative_to(loaded.root).as_posix(),
                "rehearsal": rehearsal,
                "warning": warning,
                "changes": [
                    {
                        "id": change.id,
                        "anchor": ids("change", release.version, change.id),
                        "title": change.title,
                        "owner": change.owner,
                        "description": change.description,
                        "links": list(change.links),
                        "expected": {
                            "summary": change.expected.text,
                            "checks": _checks(runbook, change.expected.checks),
                        },
                        "rollback": {
                            "summary": change.rollback.text,
                            "retry_safe": change.rollback.retry_safe,
                            "steps": len(change.rollback.steps),
                        },
                    }
                    for change in release.changes
                ],
            }
        )

    environments = []
    for env in _env_order(runbook):
        version = current[env]
        target = facts.previous(loaded, version) if version and _is_semver(version) else None
        item = {
            "name": env,
            "url": runbook.environments[env].url,
            "current": version,
            "anchor": release_ids.get(version or ""),
            "rollback": (
                f"drillbook rollback --env {env} --to {target}" if version and target else None
            ),
            "rollback_is_command": True,
        }
        first = next((r for r in runbook.releases if version and r.version == version), None)
        if first is not None and target is None:
            # The first release runs: no command goes back, but its changes say how to undo
            # them by hand, as history's undo says; a bare "-" left the person on call guessing.
            from drillbook.commands import first_release_undo

            item["rollback"] = first_release_undo(c.rollback.text for c in first.changes)
            item["rollback_is_command"] = False
        if version is None and facts.deploy_recorded(service, env):
            # A deploy whose version is not text (a newer drillbook, a hand edit): something
            # was deployed, and what it was is not known; never "no deploy in the journal".
            item["current"] = "unknown: the newest deploy in the journal names no version"
        # The newest run that changed (or tried to change) env: one stopped in its gates
        # since leaves what an earlier run left.
        last = next(
            (e for e in entries if getattr(e, "env", None) == env and getattr(e, "touched", True)),
            None,
        )
        if last is not None and getattr(last, "unsettled", False):
            # The last `deployed` version is not what runs when a later run's deploy or
            # rollback was cut short or failed: say so, and what history says to do.
            item.update(
                current=f"unknown: {last.kind} {last.version or '?'} {last.outcome} "
                f"(run {last.run})",
                anchor=None,
                rollback=last.undo,
                rollback_is_command=bool(last.undo and last.undo.startswith("drillbook ")),
            )
        undo = item["rollback"]
        if undo and getattr(last, "outcome", None) in (UNFINISHED, "interrupted"):
            # A run killed (or interrupted) and not closed yet: drillbook refuses a rollback or a
            # deploy there until it is resumed or abandoned.
            then = f", then `{undo}`" if item["rollback_is_command"] else f", then: {undo}"
            item["rollback"] = f"`drillbook abandon {getattr(last, 'run', '?')}`{then}"
            item["rollback_is_command"] = False
        environments.append(item)

    if facts.several:
        # The commands of the page name the service (history's already do); only they are
        # rewritten, a page's text is left as written.
        from drillbook.commands import for_service

        for item in environments:
            item["rollback"] = for_service(item["rollback"], service)
        for rel in releases:
            rel["rollback"]["commands"] = for_service(rel["rollback"]["commands"], service)
            rel["warning"] = for_service(rel["warning"], service)
        warnings = [for_service(w, service) for w in warnings]
    recent = [_entry(e) for e in entries[:RECENT_LIMIT]]
    times = [e.ts for e in entries] + [r.get("ts") for r in rehearsals]
    rehearsal_rows = [_rehearsal(r, loaded, out) for r in reversed(rehearsals)]
    context = {
        "service": service,
        "owner": runbook.owner,
        "escalation": runbook.escalation,
        "description": runbook.description,
        "runbook": loaded.display_path,
        "runbook_sha256": loaded.sha256[:12],
        "as_of": when(max(times, key=_sort_key)) if times else None,
        "warnings": warnings,
        "environments": environments,
        "health": [
            {"label": name, "words": describe_check(check)}
            for name, check in runbook.checks.items()
        ],
        "logs": [
            {
                "name": log.name,
                "format": log.format,
                "look_for": log.look_for,
                "where": [
                    {"env": env, "path": log.where.replace("{env}", env)}
                    for env in _env_order(runbook)
                ],
                "same_everywhere": "{env}" not in log.where,
            }
            for log in runbook.logs
        ],
        "recent": recent,
        "recent_more": max(0, len(entries) - RECENT_LIMIT),
        "rehearsals": rehearsal_rows,
        "chart": docs_chart.restore_chart(
            service,
            [
                (
                    _text(r.get("version")) or "?",
                    when(r.get("ts")) or "",
                    r.get("restore_ms"),
                    _text(r.get("outcome")),
                )
                for r in rehearsals[-CHART_LIMIT:]
            ],
        ),
        "releases": releases,
    }
    return context


def _is_semver(version: str) -> bool:
    return semver_key(version) != (-1,)


_KINDS = {"rehearse": "rehearsal"}


def _entry(entry: Any) -> dict[str, Any]:
    data = entry.as_dict() if hasattr(entry, "as_dict") else dict(entry)
    owners = data.get("owners") or []
    undo = data.get("undo")
    kind = data.get("kind")
    return {
        "when": when(data.get("ts")),
        "kind": _KINDS.get(kind, kind),
        "env": data.get("env"),
        "version": data.get("version"),
        "previous": data.get("previous"),
        "outcome": _words(data.get("outcome")),
        "ok": str(data.get("outcome") or "").startswith("ok"),
        "duration": millis(data.get("duration_ms")),
        "owners": ", ".join(str(o) for o in owners) if isinstance(owners, list) else str(owners),
        "undo": undo,
        "undo_is_command": isinstance(undo, str) and undo.startswith("drillbook "),
        "run": data.get("run"),
    }


#: Outcomes as a badge shows them; others read as their words (`push_failed`: push failed).
_BADGES = {
    "failed_checks_restored": "checks failed, rolled back",
    "return_failed": "return failed, rolled back",
    "restore_failed": "rollback failed",
}


def _words(outcome: Any) -> str:
    """An outcome as short words: `restore_failed` reads `rollback failed`."""
    if not outcome:
        return "unknown"
    return _BADGES.get(str(outcome), str(outcome).replace("_", " "))
