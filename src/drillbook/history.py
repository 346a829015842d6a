"""What changed, from the journals: releases, deploys, rollbacks and rehearsals, newest first.

Each entry answers the first questions of an incident: when, which run, which version replaced
which, on which environment, who owns the changes, how it ended, and the command that undoes it.

Only the journals' first and last lines are read to choose the runs (`journal.list_runs`); a
journal is read whole only for a run that is shown.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drillbook.commands import first_release_undo, for_service, several_runbooks
from drillbook.errors import DrillbookError, UsageError
from drillbook.journal import failure_of, list_runs, live_events, read_journal

#: The actions history shows: those that change what an environment runs.
ACTIONS = ("release", "deploy", "rollback", "rehearse")
DEFAULT_SINCE = "24h"
_SINCE = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

# A run's `run_finished` outcome, in the words a person reads in an incident.
_OUTCOMES = {
    "ok": "ok",
    "failed": "failed",
    "rolled_back": "rolled back",
    "rollback_failed": "rollback failed",
    "interrupted": "interrupted",
    "push_failed": "ok, push failed",
    # rehearsals
    "failed_checks_restored": "rolled back",
    "return_failed": "rolled back",
    "restore_failed": "rollback failed",
    "baseline_failed": "baseline failed",
}
UNFINISHED = "unfinished (killed?)"


@dataclass(frozen=True)
class Entry:
    """One run that changed (or tried to change) what an environment runs.

    `kind` is the run's action: release, deploy, rollback or rehearse. `version` is the version
    the run put on the environment and `previous` the one it replaced and would go back to (for
    a rollback: the version it rolled back to, and the one it left). `undo` is a command a
    person can type, a sentence that starts with "nothing to undo" when there is none, or one
    that starts with "a person must act" when a rollback failed its checks.
    """

    ts: str
    run: str
    kind: str
    service: str
    env: str
    version: str | None
    previous: str | None
    outcome: str
    duration_ms: int | None
    owners: tuple[str, ...]
    changes: tuple[dict, ...]
    undo: str | None
    #: Whether `drillbook resume` would take the run up, were it stopped (not in `as_dict`).
    resumable: bool = False
    #: Whether the run left its environment running something no `deployed` event and no
    #: finished rollback proves: a deploy cut short or failed, a rollback failed or cut short
    #: (not in `as_dict`). The journal's last `deployed` version is then not what runs.
    unsettled: bool = False
    #: Whether the run started a step that changes the environment (not in `as_dict`).
    touched: bool = False
    #: For a stopped run, the (run, version) of a later run that deployed to its environment
    #: since (not in `as_dict`): what runs there is that run's doing, not this one's.
    overtaken_by: tuple[str, str] | None = None
    #: Lines of the run's journal that are not events (a crash, a hand edit) and were left out
    #: of what this entry says (not in `as_dict`).
    unreadable: int = 0

    def as_dict(self) -> dict:
        """The entry as plain JSON-ready data: what the table's row says, its `undo:`, `then:`
        and `note:` lines included (`then` None and `unreadable_lines` 0 when the table has
        none), so a script reading it is told what a person reading the table is."""
        return {
            "ts": self.ts,
            "run": self.run,
            "kind": self.kind,
            "service": self.service,
            "env": self.env,
            "version": self.version,
            "previous": self.previous,
            "outcome": self.outcome,
            "duration_ms": self.duration_ms,
            "owners": list(self.owners),
            "changes": [dict(c) for c in self.changes],
            "undo": self.undo,
            "then": _then(self),
            "unreadable_lines": self.unreadable,
        }


# A date as people write it, or as a run id begins (20261123T1430...): a number with a unit
# (`100000000d`) is a span.
_MOMENT = re.compile(r"^(\d{4}-\d{2}-\d{2}|\d{8}t)", re.IGNORECASE)
SINCE_FORMS = (
    "a duration such as 30m, 24h or 7d (s, m, h, d or w), a UTC date or time such as "
    "2026-11-23 or 2026-11-23T14:30 (another zone as +02:00), or `all`"
)


def parse_since(text: str, *, now: float | None = None) -> float | None:
    """`30m`, `24h`, `7d`, `2w` as the epoch seconds that long ago; a date or time
    (`2026-11-23`, `2026-11-23T14:30`, `2026-11-23 14:30:05+02:00`; UTC unless it names a zone)
    as its epoch seconds; `all`, or a span that reaches back before 1970, as None (every run)."""
    value = text.strip().lower()
    if value == "all":
        return None
    if _MOMENT.match(value):
        return _moment(text)
    match = _SINCE.match(value)
    if not match:
        msg = f"--since expects {SINCE_FORMS}; got {text!r}"
        raise UsageError(msg)
    now = time.time() if now is None else now
    digits = match.group(1).lstrip("0") or "0"
    # More digits than any span back to 1970 has (and int() refuses thousands): everything.
    if len(digits) > 12:
        return None
    seconds = int(digits) * _UNITS[match.group(2)]
    return None if seconds >= now else now - seconds


def _moment(text: str) -> float | None:
    """`--since` given as a date or a time: its epoch seconds, UTC unless it names a zone
    (the journal, the run ids and history's WHEN column are all UTC); None before 1970."""
    try:
        moment = datetime.fromisoformat(text.strip().upper())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    except (ValueError, OverflowError, OSError) as exc:
        msg = f"--since {text.strip()!r} is not a date or time ({exc}); expected {SINCE_FORMS}"
        raise UsageError(msg) from None
    return None if seconds < 0 else seconds


def since_words(text: str, cutoff: float | None) -> str:
    """How a heading says the span `--since TEXT` chose: `in the last 24h`, `since
    2026-11-23 14:30:00Z`, `since the first journal`."""
    if cutoff is None:
        return "since the first journal"
    if _MOMENT.match(text.strip()):
        try:
            shown = datetime.fromtimestamp(cutoff, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        except (OverflowError, OSError, ValueError):  # past year 9999 in UTC: as typed
            shown = text.strip()
        return f"since {shown}"
    return f"in the last {text.strip()}"


def _epoch(ts: Any) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        if moment.tzinfo is None:  # the journal writes UTC; one without a zone means it too
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
        datetime.fromtimestamp(seconds, UTC)  # a moment `_when` can show
    except (ValueError, OverflowError, OSError):
        return None
    return seconds


_RUN_ID_TIME = re.compile(r"^(\d{8}T\d{6}Z)-")


def _started_ts(first: dict[str, Any], run_id: str) -> str:
    """When a run started, as its first event's `ts` says; when that is not a time (a hand
    edit, a log tool that rewrote it as a number), the second its run id begins with, as
    `journal.list_runs` orders it: such a run is neither hidden from `--since` nor listed
    last, while the docs' Right now takes its deploy for the newest."""
    ts = first.get("ts")
    if _epoch(ts) is not None:
        return str(ts)
    match = _RUN_ID_TIME.match(run_id)
    if match:
        moment = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return "" if ts is None else str(ts)


def entries(root: Path, *, since: float | None = None, env: str | None = None) -> list[Entry]:
    """Releases, deploys, rollbacks and rehearsals of the project, newest first.

    `since` is in epoch seconds and compared with the start of each run; `env` keeps only the
    runs on that environment.
    """
    out: list[Entry] = []
    owners_of = _RunbookOwners(root)
    for info in list_runs(root):
        first = info.first
        if not first or first.get("event") != "run_started" or first.get("action") not in ACTIONS:
            continue
        if env is not None and first.get("env") != env:
            continue
        started = _epoch(_started_ts(first, info.run_id))
        if since is not None and (started is None or started < since):
            continue
        try:
            read = read_journal(info.path)
        except UsageError:  # gone or unreadable since list_runs saw it
            continue
        events = live_events(root, read.events)
        # The whole first event: list_runs holds only a summary of it.
        entry = _entry(events[0] if events else first, events, owners_of)
        out.append(replace(entry, unreadable=read.skipped) if read.skipped else entry)
    out.sort(key=lambda e: (_epoch(e.ts) or 0.0, e.run), reverse=True)
    out = [_not_overtaken(root, _still_running(root, e)) for e in out]
    if several_runbooks(root):
        out = [replace(e, undo=for_service(e.undo, e.service)) for e in out]
    return out


def _still_running(root: Path, entry: Entry) -> Entry:
    """`entry` as running when its run still holds its environment's lock: it was not killed,
    and neither `resume` nor `abandon` would take it (they wait for the lock)."""
    if entry.outcome != UNFINISHED:
        return entry
    from drillbook.lock import live_holder, this_host

    holder = live_holder(root, entry.env)
    if holder is None or holder.get("run") != entry.run:
        return entry
    where = "" if holder["host"] == this_host() else f" on {holder['host']}"
    return replace(entry, outcome=f"running (pid {holder['pid']}{where})")


def _not_overtaken(root: Path, entry: Entry) -> Entry:
    """`entry` as not resumable, and overtaken, when a later run deployed another version to
    its environment: `resume` refuses it then, as it would release the old version over the
    new one, and the stopped run's own undo no longer applies."""
    # Only a stopped run, or one that left its environment unknown (its rollback failed), is
    # told what to type next; asking every finished one would read the journals again for
    # every run listed.
    stopped = entry.outcome in (UNFINISHED, _OUTCOMES["interrupted"])
    if entry.kind not in ACTIONS or not (stopped or entry.unsettled):
        return entry
    from drillbook.state import deployed_since

    since = deployed_since(root, entry.env, entry.run, service=entry.service or None)
    if since is None:
        return entry
    later = (_text(since.get("run")) or "?", _text(since.get("version")) or "?")
    if since.get("version") == entry.version:
        return replace(entry, overtaken_by=later)
    return replace(entry, resumable=False, overtaken_by=later)


def run_entry(root: Path, events: list[dict[str, Any]]) -> Entry | None:
    """The entry `history` shows for the run of `events`; None for a run it does not show
    (not a release, deploy, rollback or rehearsal)."""
    first = events[0] if events else {}
    if first.get("event") != "run_started" or first.get("action") not in ACTIONS:
        return None
    entry = _not_overtaken(root, _still_running(root, _entry(first, events, _RunbookOwners(root))))
    if several_runbooks(root):
        entry = replace(entry, undo=for_service(entry.undo, entry.service))
    return entry


def stopped_run(root: Path, events: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """The `undo` and `then` lines `history` shows for the run of `events`; (None, None) for a
    run it does not show (not a release, deploy, rollback or rehearsal)."""
    entry = run_entry(root, events)
    return (None, None) if entry is None else (entry.undo, _then(entry))


def then_of(entry: Entry) -> str | None:
    """What to type next about the run of `entry`, as history's `then:` line says; None when
    there is nothing (it finished, or it is still running)."""
    return _then(entry)


def rehearsals(root: Path) -> list[dict]:
    """The `rehearsal_finished` events of the project (with `run`, `ts`, `env`), newest first."""
    found: list[dict] = []
    for info in list_runs(root):
        first = info.first or {}
        if first.get("action") != "rehearse":
            continue
        try:
            events = read_journal(info.path).events
        except UsageError:
            continue
        for event in reversed(events):
            if event.get("event") == "rehearsal_finished":
                found.append(
                    {
                        **event,
                        "run": _text(event.get("run")) or info.run_id,
                        "ts": event.get("ts", first.get("ts")),
                        "env": event.get("env", first.get("env")),
                    }
                )
                break
    found.sort(key=lambda e: (_epoch(e.get("ts")) or 0.0, e.get("run", "")), reverse=True)
    return found


# --- one entry ---------------------------------------------------------------------------------


class _RunbookOwners:
    """Changes of a version from the project's runbook, for runs whose journal lacks them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._loaded: dict[str, Any] = {}
        self._runbooks: Any = None  # runbook.ProjectRunbooks, made when first needed
        self._environ: frozenset[str] | None = None  # the environment's secrets, read once

    def changes(self, service: str, version: str | None) -> tuple[dict, ...]:
        """The changes of `version`, masked as a run's journal would hold them."""
        if not version:
            return ()
        if service not in self._loaded:
            self._loaded[service] = self._load(service)
        found = self._loaded[service]
        release = found[0].runbook.release(version) if found is not None else None
        if release is None:
            return ()
        masker = found[1]
        return tuple(
            masker.mask_obj(
                {"change": c.id, "title": c.title, "owner": c.owner, "rollback": c.rollback.text}
            )
            for c in release.changes
        )

    def _load(self, service: str) -> Any:
        """The runbook of `service` and a masker of its secrets, or None; history still answers
        without one."""
        from drillbook.runbook import ProjectRunbooks, find_runbook_files

        if self._runbooks is None:
            try:
                files = find_runbook_files([self.root / "runbooks"])
            except DrillbookError:
                files = []
            # One finder for every service asked: each runbook is read at most once.
            self._runbooks = ProjectRunbooks(self.root, files)
        try:
            loaded = self._runbooks.find(service)
        except DrillbookError:  # a broken runbook hides only its own service
            return None
        from drillbook.secrets import Masker
        from drillbook.session import masker_for

        if self._environ is None:
            self._environ = Masker.from_environ().secrets
        # The journal masks what it writes; text taken from the runbook instead is masked here.
        return loaded, masker_for(loaded, environ=self._environ)


def _last(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((e for e in reversed(events) if e.get("event") == name), None)


# A journal is read as written by this drillbook, but a newer one, a hand edit or a log tool may
# leave a field of another type: what is not of the expected type is left out, so that one odd
# journal costs its own details, never the whole answer.


def _text(value: Any) -> str | None:
    """A field that should hold text (a version, an owner): the text, a number as text, or None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    return None


def _millis(value: Any) -> int | None:
    """A duration in milliseconds, or None when it is not a number of them."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return round(value)


_CHANGE_KEYS = ("change", "title", "owner", "rollback")


def _changes(value: Any) -> tuple[dict, ...]:
    """A run's `changes` as a list of objects with the keys history shows, each text or None."""
    if not isinstance(value, list):
        return ()
    return tuple(
        {key: _text(item.get(key)) for key in _CHANGE_KEYS}
        for item in value
        if isinstance(item, dict)
    )


def _outcome(events: list[dict[str, Any]]) -> str:
    finished = _last(events, "run_finished")
    closed = _last(events, "run_closed")
    if finished is None:
        text = UNFINISHED
    else:
        raw = _text(finished.get("outcome")) or "?"
        text = _OUTCOMES.get(raw, raw.replace("_", " "))
    if closed is not None and (finished is None or finished.get("outcome") == "interrupted"):
        text += f", {_text(closed.get('how')) or 'closed'}"
    return text


def _entry(first: dict[str, Any], events: list[dict[str, Any]], owners_of: _RunbookOwners) -> Entry:
    kind = str(first.get("action"))
    env = str(first.get("env", "?"))
    service = str(first.get("service", "?"))
    finished = _last(events, "run_finished")
    deployed = [e for e in events if e.get("event") == "deployed"]
    # A step skipped as done by the run a resume continues counts: the run it resumed sends
    # the person on call here ("see run R, which resumed this one") for the undo.
    touched = bool(deployed) or any(
        e.get("event") in ("step_started", "step_skipped") and e.get("changes") for e in events
    )
    # A deploy that started and never said `deployed` (killed, interrupted, or failed with no
    # rollback after it) may have changed the environment or not: what it left is unknown.
    unproven = _deploy_unproven(events)
    left_on = _text(deployed[-1].get("version")) if deployed and not unproven else None
    found = _text(first.get("found_version"))
    version = _text(first.get("version"))
    previous = _text(first.get("previous"))
    changes_of = version
    if kind == "rollback":
        version, previous = _text(first.get("to_version")), _text(first.get("version"))
        changes_of = previous
    elif kind == "deploy":
        # What ran before, as the deploy found it in the journals; a deploy that failed has
        # no `deployed` event to say it.
        previous = found or (_text(deployed[0].get("previous")) if deployed else None)
    outcome = _outcome(events)
    changes = _changes(first.get("changes")) or owners_of.changes(service, changes_of)
    owners = tuple(dict.fromkeys(str(c["owner"]) for c in changes if c.get("owner")))
    if not owners and _text(first.get("owner")):
        owners = (str(first["owner"]),)
    raw_outcome = _text(finished.get("outcome")) if finished else None
    closed = _last(events, "run_closed")
    if closed is not None and closed.get("how") == "resumed" and _text(closed.get("by")):
        undo = f"see run {closed['by']}, which resumed this one"
    elif raw_outcome in ("rollback_failed", "restore_failed"):
        target = found if kind == "rehearse" else previous
        if kind == "rollback":
            target = version
        undo = _undo_failed_rollback(env, target, _again(kind, events))
    elif (
        kind in ("release", "rehearse")
        and _rollback_cut_short(events)
        and (left_on is not None and left_on == (found if kind == "rehearse" else previous))
    ):
        # Its redeploy finished, its checks did not: "nothing to undo (rolled back)" or
        # "(left on it, as found)" would tell the person on call that staging is proven fine.
        from drillbook.session import check_it_hint

        undo = (
            f"a person must check: the rollback to {left_on} was cut short before its checks "
            f"proved it; {check_it_hint(env, left_on)}"
        )
    elif kind == "rehearse":
        finish = _last(events, "rehearsal_finished") or {}
        left_on = _text(finish.get("left_on", left_on)) if finish else left_on
        undo = _undo_rehearsal(env, touched, left_on, found)
    elif kind == "rollback":
        undo = _undo_rollback(env, touched, previous)
    elif kind == "deploy":
        undo = _undo_deploy(env, touched, bool(deployed), previous, version)
    else:
        undo = _undo_release(kind, env, touched, unproven, left_on, previous, outcome, changes)
    # As `tasks.resume` judges it: only a release, and not one that had failed or was rolling
    # back (a check that passes on a second try must not get a failed release tagged).
    resumable = kind == "release" and failure_of(events) == (None, None)
    if resumable and (finished is None or raw_outcome == "interrupted"):
        resumable = _runbook_unchanged(owners_of.root, first)
    return Entry(
        ts=_started_ts(first, str(first.get("run", ""))),
        run=str(first.get("run", "")),
        kind=kind,
        service=service,
        env=env,
        version=version,
        previous=previous,
        outcome=outcome,
        duration_ms=_millis(finished.get("duration_ms")) if finished else None,
        owners=owners,
        changes=changes,
        undo=undo,
        resumable=resumable,
        touched=touched,
        unsettled=unproven
        or raw_outcome in ("rollback_failed", "restore_failed")
        or _rollback_cut_short(events),
    )


def _runbook_unchanged(root: Path, first: dict[str, Any]) -> bool:
    """Whether the runbook a run started from still has the bytes it had: `resume` refuses a
    run whose runbook changed, moved or went since (its plan may not be the one half run)."""
    import hashlib

    runbook, sha = first.get("runbook"), first.get("runbook_sha256")
    if not isinstance(runbook, str) or not isinstance(sha, str):
        return False
    try:
        return hashlib.sha256((root / runbook).read_bytes()).hexdigest() == sha
    except OSError:
        return False


def _rollback_cut_short(events: list[dict[str, Any]]) -> bool:
    """Whether the run started a rollback that never finished (interrupted or killed)."""
    started = any(e.get("event") == "rollback_started" for e in events)
    return started and not any(e.get("event") == "rollback_finished" for e in events)


def _deploy_unproven(events: list[dict[str, Any]]) -> bool:
    """Whether the run's last deploy step started and no `deployed` event followed it."""
    for event in reversed(events):
        if event.get("event") == "deployed":
            return False
        if event.get("event") == "step_started" and event.get("kind") == "deploy":
            return True
    return False


def _rollback(env: str, to: str) -> str:
    return f"drillbook rollback --env {env} --to {to}"


def _undo_release(
    kind: str,
    env: str,
    touched: bool,
    unproven: bool,
    left_on: str | None,
    previous: str | None,
    outcome: str,
    changes: tuple[dict, ...],
) -> str:
    if not touched:
        return "nothing to undo (nothing was deployed)"
    if previous is not None and left_on == previous:
        return f"nothing to undo (rolled back to {previous})"
    if unproven and previous is not None:
        # The journal still says what ran before the cut-short deploy (or names the new version
        # with the rollback's redeploy cut short), so only a deploy is sure to be accepted.
        return f"drillbook deploy --env {env} --version {previous}"
    if previous is not None:
        return _rollback(env, previous)
    if outcome == "rolled back":
        return "nothing to undo (rolled back: no earlier version, its rollback steps ran)"
    if kind == "deploy":
        return f"the journal does not say what ran before: {_rollback(env, 'VERSION')}"
    return first_release_undo(str(c["rollback"]) for c in changes if c.get("rollback"))


def _again(kind: str, events: list[dict[str, Any]]) -> bool | None:
    """Whether the failed rollback of a release or a rollback run is one to run again: it
    stopped before its redeploy, after the release's own deploy, so the journal still says the
    version it undoes runs; None when it is not, and a deploy puts its target back. Else
    whether running it again is safe, as its changes say."""
    if kind not in ("release", "rollback"):
        return None
    from drillbook.session import redeployed_by_rollback

    if redeployed_by_rollback(events):
        return None
    if kind == "release" and not any(
        (e.get("event") == "deployed" and e.get("by") == "release")
        or (e.get("event") == "step_skipped" and e.get("step") == "deploy")  # a resume's
        for e in events
    ):
        return None  # its own deploy failed: the journal says the version before runs
    started = _last(events, "rollback_started") or {}
    return started.get("retry_safe") is not False


def _undo_failed_rollback(env: str, target: str | None, again: bool | None = None) -> str:
    """A rollback that did not prove itself: no command is safe to type without looking.

    `again` (see `_again`): not None when the rollback stopped before its redeploy, with the
    journal still saying that the version it undoes runs; a deploy of the target would leave
    out the rollback steps that did not run, so the rollback itself is what to run again.
    """
    where = f"the rollback to {target}" if target else "the rollback"
    if again is None:
        then = f"; once the cause is fixed, `drillbook deploy --env {env} --version {target}`"
    else:
        then = (
            f"; once the cause is fixed, `{_rollback(env, str(target))}` runs it again from its "
            "first step"
            + ("" if again else " (not safe to run twice: check what its steps did first)")
        )
    return (
        f"a person must act: {where} failed (a step or its checks), so {env} is in an unknown "
        f"state; start with the run's journal (expected and got){then if target else ''}"
    )


def _undo_deploy(env: str, touched: bool, ok: bool, found: str | None, version: str | None) -> str:
    """Undo a `drillbook deploy`: the command that puts back what ran before, and works.

    `rollback` goes only down from what the journal says runs; a deploy that failed left
    the journal saying `found`, and a deploy down (or over itself) has nothing below it.
    """
    from drillbook.versions import is_semver, semver_key

    if not touched:
        return "nothing to undo (nothing was deployed)"
    redeploy = f"drillbook deploy --env {env} --version {found or 'VERSION'}"
    if found is None:
        return f"the journal does not say what ran before: {redeploy}"
    if not ok:
        return redeploy  # it did not finish: what ran before, deployed again
    if found == version:
        return f"nothing to undo ({version} was deployed again over itself)"
    went_up = (
        version is not None
        and is_semver(found)
        and is_semver(version)
        and semver_key(found) < semver_key(version)
    )
    # Up: a rollback goes back, with its checks; down or sideways, only a deploy does.
    return _rollback(env, found) if went_up else redeploy


def undo_of_deploy(env: str, found: str | None, version: str) -> str:
    """What undoes a `drillbook deploy` of `version` that finished, over `found` (what the
    journal said ran before it), as history says it."""
    return _undo_deploy(env, True, True, found, version)


def _undo_rollback(env: str, touched: bool, left: str | None) -> str:
    if not touched or left is None:
        return "nothing to undo (nothing was deployed)"
    return f"drillbook deploy --env {env} --version {left}"


def _undo_rehearsal(env: str, touched: bool, left_on: str | None, found: str | None) -> str:
    if not touched:
        return "nothing to undo (nothing was deployed)"
    if left_on is not None and left_on == found:
        return f"nothing to undo ({env} left on {left_on}, as found)"
    if found is not None:
        return f"drillbook deploy --env {env} --version {found}"
    if left_on is not None:
        return f"nothing to undo ({env} left on {left_on}; the journal knew no version before)"
    return f"{env} runs an unknown version: see the rehearsal's report and journal"


# --- text --------------------------------------------------------------------------------------


def format_duration_ms(ms: int | None) -> str:
    """`850ms`, `3.1s`, `2m05s`; `-` when unknown."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _when(ts: str, *, with_year: bool = False) -> str:
    moment = _epoch(ts)
    if moment is None:
        return ts[:19] or "?"
    # UTC, as the journal and most log stores write it, so times can be matched by eye.
    shown = "%Y-%m-%d %H:%M:%SZ" if with_year else "%m-%d %H:%M:%SZ"
    return datetime.fromtimestamp(moment, UTC).strftime(shown)


def _other_year(rows: list[Entry], now: float) -> bool:
    """Whether a row is of another year than `now`'s: then month and day alone mislead."""
    year = datetime.fromtimestamp(now, UTC).year
    moments = (_epoch(e.ts) for e in rows)
    return any(datetime.fromtimestamp(m, UTC).year != year for m in moments if m is not None)


def _versions(entry: Entry) -> str:
    version = entry.version or "?"
    if entry.previous:
        return f"{entry.previous} -> {version}"
    return version


def table(rows: list[Entry], *, now: float | None = None) -> list[str]:
    """The entries as a compact table, each followed by its undo line.

    Times show month and day, and the year too when a row is of another year than `now`'s.
    """
    several = len({e.service for e in rows}) > 1
    with_year = _other_year(rows, time.time() if now is None else now)
    header = ["WHEN (UTC)", "WHAT", "VERSION", "ENV", "OUTCOME", "TOOK", "OWNERS", "RUN"]
    if several:
        header.insert(1, "SERVICE")
    body: list[list[str]] = []
    for e in rows:
        cells = [
            _when(e.ts, with_year=with_year),
            e.kind,
            _versions(e),
            e.env,
            e.outcome,
            format_duration_ms(e.duration_ms),
            ", ".join(e.owners) or "-",
            e.run,
        ]
        if several:
            cells.insert(1, e.service)
        body.append(cells)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lines = [line(header)]
    for entry, cells in zip(rows, body, strict=True):
        lines.append(line(cells))
        if entry.undo:
            lines.append(f"{'':{widths[0]}}  undo: {entry.undo}")
        then = _then(entry)
        if then:
            lines.append(f"{'':{widths[0]}}  then: {then}")
        if entry.unreadable:
            # What this row says was judged without them: the person should know to look.
            many = "s are" if entry.unreadable > 1 else " is"
            lines.append(
                f"{'':{widths[0]}}  note: {entry.unreadable} line{many} not JSON in "
                f".drillbook/journal/{entry.run}.jsonl and left out of this row"
            )
    return lines


def _then(entry: Entry) -> str | None:
    """What to do about a run that stopped and that nobody resumed or abandoned yet, or about
    one that left its environment unknown and a later run has deployed over since."""
    if entry.outcome not in (UNFINISHED, _OUTCOMES["interrupted"]):
        if entry.overtaken_by is None:
            return None
        # "A person must act" on a row whose environment a later run has settled since sends
        # the person on call to mend what is mended already.
        run, version = entry.overtaken_by
        return (
            f"run {run} has deployed {version} to {entry.env} since, so the undo above no "
            "longer applies: see that run in `drillbook history`"
        )
    if entry.resumable:
        # A run killed holds its environment: the undo is refused until it is closed.
        then = ", then the undo above" if (entry.undo or "").startswith("drillbook ") else ""
        return f"`drillbook resume {entry.run}`, or `drillbook abandon {entry.run}`{then}"
    if entry.overtaken_by is not None:
        # The undo above was for what this run left; a later run has changed that since, and
        # the undo may now be refused (`rollback --to` the version that runs).
        run, version = entry.overtaken_by
        return (
            f"`drillbook abandon {entry.run}`; run {run} has deployed {version} to {entry.env} "
            "since, so the undo above no longer applies: see that run in `drillbook history`"
        )
    if entry.kind == "release":
        # It had failed, was rolling back, or its runbook changed since: `resume` refuses it;
        # the undo line says the rest.
        if (entry.undo or "").startswith("nothing to undo"):
            return f"`drillbook abandon {entry.run}`, then release again if still needed"
        return f"`drillbook abandon {entry.run}`, then the undo above"
    # Only a release resumes step by step: `resume` refuses the others.
    return f"`drillbook abandon {entry.run}`, then run the {entry.kind} again if still needed"
