"""What the task layer prints: plans, summaries and the incident digest."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from drillbook.console import Console
from drillbook.digest import log_lines
from drillbook.plan import Plan

if TYPE_CHECKING:
    from drillbook.release import Outcome
    from drillbook.session import RunSession


def print_plan(console: Console, plan: Plan, probes: list[tuple[str, str, bool]]) -> None:
    """A plan as numbered lines, marking the steps that change something."""
    what = f"{plan.action} {plan.version or ''}".strip()
    console.print(f"plan: {what} of {plan.service} on {plan.env}", style="bold")
    if plan.previous:
        console.print(f"previous version: {plan.previous} (the rollback target)")
    for i, step in enumerate(plan.steps, 1):
        mark = (
            console.paint("changes", "yellow") if step.changes else console.paint("reads  ", "dim")
        )
        console.print(f"  {i:>2}. [{mark}] {step.title}")
        if step.argv:
            import shlex

            console.print(console.paint(f"          $ {shlex.join(step.argv)}", "dim"))
    for note in plan.notes:
        console.print(f"note: {note}", style="yellow")
    if probes:
        console.print("read-only probes:", style="bold")
        for name, found, ok in probes:
            console.print(f"  {console.outcome('ok' if ok else 'fail')} {name}: {found}")


def plan_json(plan: Plan, probes: list[tuple[str, str, bool]]) -> dict[str, Any]:
    """A plan as plain data."""
    return {
        "action": plan.action,
        "service": plan.service,
        "env": plan.env,
        "version": plan.version,
        "previous": plan.previous,
        "steps": [s.as_dict() for s in plan.steps],
        "notes": list(plan.notes),
        "probes": [{"probe": n, "found": f, "ok": ok} for n, f, ok in probes],
    }


def print_digest(session: RunSession, outcome: Outcome) -> None:
    """The incident digest: failing check, log lines, rollback, owner and where to page."""
    console = session.console
    runbook = session.loaded.runbook
    failed = outcome.failed
    bar = "─" * 72
    console.print(console.paint(f"── incident digest {bar}"[:78], "red"))
    console.print(console.paint(outcome.headline, "bold"))
    if failed is not None:
        _print_step(console, "failed step", failed)
    # A release whose rollback failed too names the step that failed first; the person who
    # must act starts from the rollback's, so its expected and got are shown as well.
    undo = outcome.rollback[-1] if outcome.rollback else None
    if undo is not None and not undo.ok and undo is not failed:
        _print_step(console, "failed rollback step", undo)
    lines, read = log_lines(
        runbook,
        session.root,
        session.env,
        session.started_wall - 1,
        mask=session.masker.mask_unseen,
    )
    if lines:
        console.print(f"newest log lines since the run started ({', '.join(read)}):")
        for line in lines:
            console.print(f"  [{line.source}] {line.text}")
    elif read:
        console.print(f"logs ({', '.join(read)}): no error lines since the run started")
    owners = _owners(session, outcome)
    if outcome.rollback:
        steps = ", ".join(f"{r.step.id} {r.outcome}" for r in outcome.rollback)
        console.print(f"rollback: {steps}")
    if outcome.outcome == "rollback_failed":
        console.print(console.paint(_must_act(session), "red"))
    console.print(
        f"owner: {owners}; service owner {runbook.owner}"
        + (f"; page {runbook.escalation}" if runbook.escalation else "")
    )
    console.print(f"journal: .drillbook/journal/{session.run_id}.jsonl")
    console.print(console.paint(bar[:78], "red"))


def print_failed_checks(console: Any, result: Any) -> None:
    """The checks of a step that did not pass, each with what it expected and what it got."""
    _print_step(console, "did not pass", result)


def _print_step(console: Any, label: str, failed: Any) -> None:
    """A failed step in the digest: its failing checks with expected and got, or its detail
    and last lines of output."""
    console.print(f"{label}: {failed.step.title}")
    bad = [c for c in failed.checks if c.outcome != "pass"]
    for res in bad[:5]:
        console.print(f"  {console.outcome(res.outcome)} {res.name}: {res.message}")
        console.print(f"      expected: {res.expected}")
        console.print(f"      got:      {res.got}")
        if res.excerpt:
            console.print(f"      response: {res.excerpt[:200]}")
    if len(bad) > 5:
        # Five are enough to start from; the rest are not to be taken for checks that passed.
        console.print(
            f"  ... and {len(bad) - 5} more that did not pass, each above and in the journal"
        )
    if not bad and failed.detail:
        console.print(f"  {failed.detail}")
    # verify-config's failed rules, each with expected and got.
    findings = failed.data.get("findings") or []
    for finding in findings[:5]:
        console.print(f"  {console.outcome('fail')} {finding}")
    total = failed.data.get("findings_total", len(findings))
    if total > 5:
        console.print(f"  ... and {total - 5} more above")
    if not bad and failed.output_tail:
        for line in failed.output_tail.splitlines()[-5:]:
            console.print(f"  │ {line}")


def _owners(session: RunSession, outcome: Outcome) -> str:
    failed = outcome.failed
    owners: list[str] = []
    if failed is not None:
        for res, change_owner in _check_owners(session, failed):
            if res.outcome != "pass" and change_owner and change_owner not in owners:
                owners.append(change_owner)
        if failed.step.owner and failed.step.owner not in owners:
            owners.append(failed.step.owner)
    if not owners:
        release = session.loaded.runbook.release(session.version or "")
        if release:
            owners = sorted({f"{c.owner} ({c.id})" for c in release.changes})
    return ", ".join(owners) or session.loaded.runbook.owner


def _check_owners(session: RunSession, failed: Any) -> list[tuple[Any, str | None]]:
    release = session.loaded.runbook.release(session.version or "")
    if release is None:
        return [(c, None) for c in failed.checks]
    from drillbook.release import expected_items

    items = expected_items(session.loaded.runbook, release)
    out = []
    for item, res in zip(items, failed.checks, strict=False):
        out.append((res, f"{item.owner} ({item.change})" if item.owner else None))
    return out


def summary_json(session: RunSession, outcome: Outcome) -> str:
    """The machine-readable summary of a run, for CI."""
    steps = []
    for result in [*_executor_results(session)]:
        steps.append(
            {
                "step": result.step.id,
                "outcome": result.outcome,
                "duration_ms": result.duration_ms,
                "detail": result.detail,
                "checks": [c.as_dict() for c in result.checks],
                **{k: v for k, v in result.data.items() if k.startswith("findings")},
            }
        )
    payload = {
        "run": session.run_id,
        "action": session.action,
        "service": session.loaded.runbook.service,
        "env": session.env,
        "version": session.version,
        "outcome": outcome.outcome,
        "exit": outcome.exit_code,
        "headline": outcome.headline,
        "duration_ms": session.elapsed_ms(),
        "artifacts": outcome.artifacts,
        "journal": f".drillbook/journal/{session.run_id}.jsonl",
        "steps": steps,
    }
    if outcome.exit_code:
        # A run that failed says so under the keys every failing document has, so that a
        # pipeline reads `error`, `hint` and `retry_safe` whatever task it ran.
        payload.update(
            error=outcome.headline,
            hint=_failure_hint(session, outcome),
            retry_safe=outcome.outcome != "rollback_failed" and session.retry_safe,
        )
    return json.dumps(session.masker.mask_obj(payload), indent=2)


def _failure_hint(session: RunSession, outcome: Outcome) -> str:
    """What to do after a run that failed, in one sentence (the digest says it at length)."""
    where = f" at {outcome.failed.step.title}" if outcome.failed is not None else ""
    if outcome.outcome == "rollback_failed":
        return _must_act(session, shown="in `steps`")
    if outcome.rollback:
        return (
            f"{session.env} was rolled back and its rollback checks pass; fix what failed"
            f"{where}, then run again"
        )
    return f"fix what failed{where} (expected and got in `steps`, and the journal), then run again"


def _must_act(session: RunSession, *, shown: str = "above") -> str:
    """Where a person starts after a rollback that failed."""
    from drillbook.plan import note_path

    runbook = session.loaded.runbook
    # The note of this version exists only if an earlier run wrote it; a failed release
    # stops before its note step, and then the runbook holds each change's rollback.
    note = note_path(runbook, session.version or "", session.env)
    guide = (
        f"the rollback note {note}"
        if session.version and (session.root / note).is_file()
        else f"each change's `rollback:` in {session.loaded.display_path}"
    )
    return (
        f"a person must act: start with the failed rollback step {shown}, then "
        f"{guide}, and page {runbook.escalation or runbook.owner}"
    )


def _executor_results(session: RunSession) -> list[Any]:
    return list(getattr(session, "results", []))
