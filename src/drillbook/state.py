"""What the journal says about the world now: current versions, finished releases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from drillbook.journal import list_runs, read_journal


def _events_newest_first(root: Path, env: str) -> Iterator[dict[str, Any]]:
    """Events of the runs that may have changed `env`, newest first, read one run at a time.

    Runs that change nothing (lint, checks, notes) are skipped by their first event alone, so
    asking for the current version costs one journal read in the usual case, not all of them.
    """
    for info in list_runs(root):  # newest run first
        first = info.first or {}
        if first.get("env") not in (None, env) or first.get("changes_world") is False:
            continue
        yield from reversed(read_journal(info.path).events)


def current_version(root: Path, env: str, *, service: str | None = None) -> str | None:
    """The version last deployed to `env` and left there, by the journal.

    With `service`, only that service's deploys count (a project may hold several runbooks).
    """
    event = current_deploy(root, env, service=service)
    return version_of(event) if event is not None else None


def current_deploy(root: Path, env: str, *, service: str | None = None) -> dict[str, Any] | None:
    """The `deployed` event of what runs on `env`, by the journal (see `current_version`): it
    also says the rollback target of that deploy (`previous`) and which run made it."""
    return next(_deploys_newest_first(root, env, service), None)


def ran_before(root: Path, env: str, *, service: str | None = None) -> str | None:
    """The version the deploy before the current one left on `env`, by the journal."""
    deploys = _deploys_newest_first(root, env, service)
    next(deploys, None)
    before = next(deploys, None)
    return version_of(before) if before is not None else None


def _deploys_newest_first(root: Path, env: str, service: str | None) -> Iterator[dict[str, Any]]:
    for event in _events_newest_first(root, env):
        if event.get("event") != "deployed" or event.get("env") != env:
            continue
        if service is not None and event.get("service") not in (None, service):
            continue
        yield event


def deployed_since(
    root: Path, env: str, run_id: str, *, service: str | None = None
) -> dict[str, Any] | None:
    """The newest `deployed` event on `env` of a run that started after run `run_id`, or None.

    Runs are read newest first, up to the journal of `run_id` itself.
    """
    for event in _events_newest_first(root, env):
        if event.get("run") == run_id:
            return None
        if event.get("event") != "deployed" or event.get("env") != env:
            continue
        if service is not None and event.get("service") not in (None, service):
            continue
        return event
    return None


def version_of(deployed: dict[str, Any]) -> str | None:
    """The version a `deployed` event names; None ("not known") when it names none as text.

    A newer drillbook or a hand edit may write another type: the newest deploy still counts, so
    no older version is taken for what runs now.
    """
    version = deployed.get("version")
    return version if isinstance(version, str) else None


class CurrentVersions:
    """`current_version` for every environment and service at once, from one read of the journal.

    `current_version` reads the journals newest first until it finds the answer, which costs
    every journal when a service was never deployed; the docs of a project ask it once for
    each service and environment. This reads each journal that may have changed something
    once, and then answers each question from what it kept, with the same rules.
    """

    def __init__(self, root: Path) -> None:
        # (env, service or None) -> (how new: 0 is the newest deploy, version)
        self._first: dict[tuple[str, str | None], tuple[int, str | None]] = {}
        order = 0
        for info in list_runs(root):  # newest run first
            first = info.first or {}
            if first.get("changes_world") is False:
                continue
            run_env = first.get("env")
            for event in reversed(read_journal(info.path).events):
                env = event.get("env")
                if event.get("event") != "deployed" or not isinstance(env, str):
                    continue
                if run_env not in (None, env):  # current_version skips such a run for env
                    continue
                service = event.get("service")
                if service is not None and not isinstance(service, str):
                    continue  # names no service a runbook can have, and is not "any service"
                key = (env, service)
                self._first.setdefault(key, (order, version_of(event)))
                order += 1

    def recorded(self, env: str, service: str) -> bool:
        """Whether the journal records a deploy to `env` that counts for `service`, even one
        whose version `of` cannot tell."""
        return (env, service) in self._first or (env, None) in self._first

    def of(self, env: str, service: str) -> str | None:
        """What `current_version(root, env, service=service)` answers."""
        found = [self._first.get((env, service)), self._first.get((env, None))]
        newest = min((f for f in found if f is not None), default=None, key=lambda f: f[0])
        return newest[1] if newest is not None else None


def finished_release(root: Path, env: str, version: str, sha256: str) -> dict[str, Any] | None:
    """The `run_finished` event of a successful release of `version` with this runbook, if any.

    A release whose push alone failed (`push_failed`) counts: everything but the push is done,
    and running it again only pushes.
    """
    for info in list_runs(root):
        first = info.first or {}
        if first.get("action") != "release" or first.get("env") != env:
            continue
        if first.get("version") != version or first.get("runbook_sha256") != sha256:
            continue
        last = info.last or {}
        if last.get("event") == "run_finished" and last.get("outcome") in ("ok", "push_failed"):
            return last
    return None


def _kept_tags(root: Path, service: str, version: str, tag: str) -> Iterator[tuple[str, Any]]:
    """(run id, commit) of each release run of `version`, newest first, that made `tag` and
    kept it: the run did not roll back nor take the tag back. It need not have finished: a
    run interrupted while pushing made its tag as much as one whose push failed."""
    for info in list_runs(root):
        first = info.first or {}
        if first.get("action") != "release" or first.get("version") != version:
            continue
        if first.get("service") not in (None, service):
            continue
        events = read_journal(info.path).events
        if any(e.get("event") in ("rollback_started", "tag_deleted") for e in events):
            continue
        for event in events:
            if (
                event.get("event") == "step_finished"
                and event.get("step") == "tag"
                and event.get("outcome") in ("ok", "done")
                and event.get("tag") == tag
            ):
                yield info.run_id, event.get("commit")


def tag_made_by_release(
    root: Path, service: str, version: str, tag: str, commit: str
) -> str | None:
    """The id of a release run of `version` that made `tag` on `commit` and kept it, or None
    (kept, as `_kept_tags` judges)."""
    return next(
        (run for run, made_on in _kept_tags(root, service, version, tag) if made_on == commit), None
    )


def released_commit(root: Path, service: str, version: str, tag: str) -> str | None:
    """The commit a release run of `version` made `tag` on and kept (as `_kept_tags` judges),
    newest such run first, or None: where to put a lost tag back."""
    return next(
        (
            made_on
            for _, made_on in _kept_tags(root, service, version, tag)
            if isinstance(made_on, str)
        ),
        None,
    )
