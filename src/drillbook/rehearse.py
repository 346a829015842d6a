"""A rollback rehearsal on staging: baseline, deploy, verify, roll back, verify again, timed.

The flow, over the executor and the journal of one `RunSession`:

1. **baseline**: deploy the previous version P and prove it with V's rollback checks (they
   describe P's state, so they must pass on P before they can prove a rollback to it);
2. **deploy** V and run its expected checks (**verify**);
3. **restore**: the rollback of V (each change's rollback steps in reverse order, then P
   deployed again) and its checks; the time to restore runs from the start of the rollback
   until its checks pass;
4. **return**: staging goes back to the version the journal says it ran before the rehearsal
   (V when the journal knows none), proven with that version's expected checks. When staging
   ran P, it stays on P and this step is left out.

When V fails its checks, the rollback still runs and is proven (exit 4) and staging stays on P.
When the rollback fails after V passed, V is deployed again so staging runs a version that
works (exit 5 all the same: the rollback does not work). Every outcome ends with one
`rehearsal_finished` event and a report in `reports/`, Markdown and JSON.

`rehearsal_finished` holds `outcome` (one of `OUTCOMES`), `version`, `previous`, the timings
`baseline_ms`, `deploy_ms`, `verify_ms`, `restore_ms` (null unless the rollback's checks
passed), `redeploy_ms` (the return step, deploy and checks; null when it did not run) and
`total_ms`, `report_md` and `report_json` (relative to the project), `runbook_sha256`,
`failed_checks` (labels), and `found_version`, `left_on`, `exit`, `report_error`. A rehearsal
stopped by a signal writes no such event: its `run_finished` says `interrupted`.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from drillbook import gitops
from drillbook.describe import describe_check
from drillbook.errors import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_ROLLBACK_FAILED,
    EXIT_ROLLED_BACK,
    PreconditionFailed,
    UsageError,
)
from drillbook.execute import CheckItem, Executor, StepResult
from drillbook.model import Release, Runbook
from drillbook.plan import Kind, Plan, PlannedStep, command_of, placeholders, rollback_steps
from drillbook.release import expected_items, rollback_command, rollback_items, run_rollback
from drillbook.session import RunSession, masker_for
from drillbook.versions import semver_key

if TYPE_CHECKING:
    from drillbook.checks import CheckResult
    from drillbook.runbook import LoadedRunbook

#: The outcomes a `rehearsal_finished` event can hold.
OUTCOMES = ("ok", "failed_checks_restored", "return_failed", "restore_failed", "baseline_failed")
#: Each outcome as a person reads it, after "the rehearsal ...".
OUTCOME_WORDS = {
    "ok": "passed: the version and its rollback both proved themselves",
    "failed_checks_restored": "found the version failing its checks; the rollback worked",
    "return_failed": (
        "proved the version and its rollback, but putting back what ran before failed; "
        "rolled back to the previous version again"
    ),
    "restore_failed": "failed: the rollback failed, a step or its checks",
    "baseline_failed": "stopped before it began: the baseline checks failed",
}
#: The environment a rehearsal runs on unless `--allow-env` says otherwise.
REHEARSAL_ENV = "staging"
REPORT_TEMPLATE = "rehearsal-report.md.j2"


@dataclass
class Timings:
    """How long each phase took, in milliseconds; None for a phase that did not run or pass."""

    baseline_ms: int | None = None
    deploy_ms: int | None = None
    verify_ms: int | None = None
    restore_ms: int | None = None
    redeploy_ms: int | None = None
    total_ms: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        """The timings as plain data."""
        return {
            "baseline_ms": self.baseline_ms,
            "deploy_ms": self.deploy_ms,
            "verify_ms": self.verify_ms,
            "restore_ms": self.restore_ms,
            "redeploy_ms": self.redeploy_ms,
            "total_ms": self.total_ms,
        }


@dataclass
class Rehearsal:
    """How a rehearsal ended: the outcome, the timings, and where staging was left."""

    version: str
    previous: str
    found: str | None  # what staging ran before, by the journal
    outcome: str = "ok"
    exit_code: int = EXIT_OK
    headline: str = ""
    left_on: str | None = None  # the version staging runs at the end, None when it is unknown
    timings: Timings = field(default_factory=Timings)
    failed: StepResult | None = None
    rollback: list[StepResult] = field(default_factory=list)
    what_to_do: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    report_md: str | None = None
    report_json: str | None = None

    @property
    def failed_checks(self) -> list[str]:
        """Labels of the checks that did not pass, in the order they ran, each once."""
        labels: list[str] = []
        for result in self.steps:
            for check in result.checks:
                if check.outcome != "pass" and check.name not in labels:
                    labels.append(check.name)
        return labels


# --- plan -------------------------------------------------------------------------------------


def require_rehearsal_env(env: str, *, allow_env: bool) -> None:
    """Refuse an environment other than staging unless the user allowed it."""
    if env != REHEARSAL_ENV and not allow_env:
        msg = (
            f"a rehearsal deploys, breaks on purpose and rolls back; it runs on {REHEARSAL_ENV}, "
            f"not on {env}"
        )
        raise UsageError(msg, hint=f"pass --allow-env to rehearse on {env} all the same")


def require_previous(runbook: Runbook, version: str, previous: str | None) -> str:
    """The previous version, or PreconditionFailed: without one there is nothing to go back to."""
    if previous is not None:
        return previous
    tag = runbook.tag_name("X.Y.Z")
    msg = (
        f"no released version below {version} was found in git tags (named like {tag}), so "
        "there is nothing to roll back to and nothing to rehearse"
    )
    raise PreconditionFailed(
        msg,
        hint=(
            "release a previous version first (`drillbook release --version X.Y.Z`), or tag the "
            f"commit of the version staging ran before: git tag -a {tag} -m 'X.Y.Z' COMMIT"
        ),
    )


def end_version(version: str, found: str | None) -> str:
    """Where staging is left after a good rehearsal: where it was, or V when that is unknown."""
    return found if found is not None else version


def plan_rehearsal(
    runbook: Runbook, *, env: str, version: str, previous: str, found: str | None
) -> Plan:
    """The steps of a rehearsal when everything passes; pure."""
    release = runbook.release(version)
    values = placeholders(runbook, env, version, previous)
    baseline_values = {**values, "version": previous, "previous": version}
    rollback_count = len(rollback_items(runbook, release))
    expected_count = len(expected_items(runbook, release)) if release else 0

    def deploy_step(step_id: str, title: str, vals: dict[str, str]) -> PlannedStep:
        argv = command_of(runbook.deploy, vals) if runbook.deploy is not None else None
        return PlannedStep(step_id, "deploy", title, changes=True, argv=argv)

    def checks_step(step_id: str, title: str, count: int) -> PlannedStep:
        plural = "s" if count != 1 else ""
        return PlannedStep(step_id, "checks", f"{title} ({count} check{plural})", changes=False)

    steps = [
        deploy_step("baseline-deploy", f"baseline: deploy {previous} to {env}", baseline_values),
        checks_step(
            "baseline-checks",
            f"baseline: rollback checks of {version} on {previous}",
            rollback_count,
        ),
        deploy_step("deploy", f"deploy {version} to {env}", values),
        checks_step("integration", f"expected checks of {version} on {env}", expected_count),
        PlannedStep(
            "rollback",
            "rollback",
            f"roll back to {previous}: the changes' rollback steps, {previous} deployed again, "
            "the rollback checks (timed)",
            changes=True,
        ),
    ]
    end = end_version(version, found)
    notes = [
        f"the rollback checks of {version} run twice: on {previous} before {version} is "
        f"deployed, and after the rollback; the time to restore runs from the start of the "
        "rollback until its checks pass",
    ]
    if end != previous:
        end_release = runbook.release(end)
        count = len(expected_items(runbook, end_release)) if end_release else 0
        steps.append(
            deploy_step(
                "return-deploy",
                f"return: deploy {end} to {env} again",
                {**values, "version": end, "previous": previous},
            )
        )
        steps.append(checks_step("return-checks", f"return: expected checks of {end}", count))
        why = (
            "as before the rehearsal"
            if found is not None
            else "forward again: the journal knows no version before"
        )
        notes.append(f"{env} ends on {end} ({why}); if {version} fails, it stays on {previous}")
    else:
        notes.append(f"{env} ran {previous} before the rehearsal, so it stays on {previous}")
    return Plan("rehearse", runbook.service, env, version, previous, tuple(steps), tuple(notes))


# --- the flow ---------------------------------------------------------------------------------


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _redeployed(results: Sequence[StepResult]) -> bool:
    """Whether a rollback that failed had deployed its target again: its checks failed."""
    return any(r.step.id == "rollback-deploy" and r.ok for r in results)


class _Flow:
    """One rehearsal run: the executor, the clock and the result being filled in."""

    def __init__(
        self,
        session: RunSession,
        plan: Plan,
        release: Release,
        found: str | None,
        clock: Callable[[], float],
    ) -> None:
        self.session = session
        self.plan = plan
        self.release = release
        self.runbook = session.loaded.runbook
        self.env = session.env
        self.version = release.version
        assert plan.previous is not None  # noqa: S101 - require_previous ran before
        self.previous = plan.previous
        self.clock = clock
        # The progress counter knows the rollback's steps from the start; "rollback" in the
        # plan is their heading, and run_rollback adds them to the total itself.
        values = placeholders(self.runbook, self.env, self.version, self.previous)
        self.pending_rollback = len(
            rollback_steps(self.runbook, release, self.env, self.previous, values)
        )
        self.executor = Executor(session, total=len(plan.steps) - 1 + self.pending_rollback)
        session.results = self.executor.results
        self.result = Rehearsal(self.version, self.previous, found)
        self.result.steps = self.executor.results

    # --- building blocks ------------------------------------------------------------------

    def step(self, step_id: str) -> PlannedStep:
        return self.plan.step(step_id)

    def extra_step(
        self, step_id: str, title: str, *, version: str | None = None, kind: Kind = "checks"
    ) -> PlannedStep:
        """A step the plan does not hold (a fall-back), counted in the progress lines.

        With `version`, a deploy of that version (its command filled in); else a checks step.
        """
        self.executor.total += 1
        if version is None or self.runbook.deploy is None:
            return PlannedStep(step_id, kind, title, changes=False)
        values = placeholders(self.runbook, self.env, version, self.previous)
        argv = command_of(self.runbook.deploy, values)
        return PlannedStep(step_id, "deploy", title, changes=True, argv=argv)

    def deploy(self, step: PlannedStep, version: str, previous: str | None, by: str) -> StepResult:
        deploy = self.runbook.deploy
        if deploy is None:  # nothing to deploy with: the step is a no-op that passes
            return self.executor.run(
                step, lambda: StepResult(step, "skipped", detail="the runbook has no deploy")
            )
        result = self.executor.command(step, deploy, version=version, previous=previous)
        if result.ok:
            self.session.event("deployed", version=version, previous=previous, by=by)
        return result

    def checks(
        self, step: PlannedStep, items: Sequence[CheckItem], version: str, previous: str | None
    ) -> StepResult:
        return self.executor.checks(step, items, version=version, previous=previous)

    def items_of(self, version: str) -> list[CheckItem]:
        release = self.runbook.release(version)
        return expected_items(self.runbook, release) if release else []

    def deploy_and_verify(
        self,
        deploy_step: PlannedStep,
        checks_step: PlannedStep,
        version: str,
        previous: str | None,
        items: Sequence[CheckItem],
        by: str,
    ) -> StepResult | None:
        """Deploy a version and run checks on it; the step that failed, or None."""
        deployed = self.deploy(deploy_step, version, previous, by)
        if not deployed.ok:
            return deployed
        checked = self.checks(checks_step, items, version, previous)
        return None if checked.ok else checked

    def roll_back(
        self,
        release: Release | Sequence[Release] | None,
        from_version: str,
        reason: str,
        *,
        proven_by: Release | None = None,
    ) -> tuple[bool, list[StepResult], int]:
        started = self.clock()
        self.executor.total -= self.pending_rollback
        self.pending_rollback = 0
        ok, results = run_rollback(
            self.session,
            self.executor,
            release,
            from_version=from_version,
            target=self.previous,
            reason=reason,
            counted_apart=False,
            proven_by=proven_by,
        )
        self.result.rollback.extend(results)
        return ok, results, _ms(self.clock() - started)

    def releases_between(self, end: str) -> list[Release]:
        """The releases a return to `end` from P put on staging, newest first: those above P
        up to `end` that were released (a tag says so), and `end` itself."""
        tags = gitops.tags(self.session.loaded.root)
        low, high = semver_key(self.previous), semver_key(end)
        return sorted(
            (
                r
                for r in self.runbook.releases
                if low < semver_key(r.version) <= high
                and (r.version == end or self.runbook.tag_name(r.version) in tags)
            ),
            key=lambda r: semver_key(r.version),
            reverse=True,
        )

    # --- the phases -----------------------------------------------------------------------

    def run(self) -> Rehearsal:
        r = self.result
        v, p = self.version, self.previous
        started = self.clock()
        failed = self.deploy_and_verify(
            self.step("baseline-deploy"),
            self.step("baseline-checks"),
            p,
            v,
            rollback_items(self.runbook, self.release),
            "rehearse-baseline",
        )
        r.timings.baseline_ms = _ms(self.clock() - started)
        if failed is not None:
            return self.baseline_failed(failed)
        r.left_on = p

        started = self.clock()
        deployed = self.deploy(self.step("deploy"), v, p, "rehearse")
        r.timings.deploy_ms = _ms(self.clock() - started)
        if not deployed.ok:
            return self.version_failed(deployed)
        started = self.clock()
        verified = self.checks(
            self.step("integration"), expected_items(self.runbook, self.release), v, p
        )
        r.timings.verify_ms = _ms(self.clock() - started)
        if not verified.ok:
            return self.version_failed(verified)

        ok, results, took = self.roll_back(
            self.release, v, f"rehearsal: {v} passed its checks; proving the rollback to {p}"
        )
        if not ok:
            return self.restore_failed_after_pass(results)
        r.timings.restore_ms = took
        r.left_on = p
        return self.return_to_start()

    def baseline_failed(self, failed: StepResult) -> Rehearsal:
        r = self.result
        v, p, env = self.version, self.previous, self.env
        r.outcome, r.failed = "baseline_failed", failed
        what = (
            f"the deploy of {p} failed"
            if failed.step.kind == "deploy"
            else f"{p} does not pass the rollback checks of {v}"
        )
        head = f"rehearsal of {v} stopped at the baseline: {what}; {v} was not deployed"
        found = r.found
        if found is None or found == p:
            r.left_on = None if failed.step.kind == "deploy" else p
            if failed.step.kind == "deploy":
                r.exit_code = EXIT_ROLLBACK_FAILED
                r.headline = f"{head}. {env} may be down: a person must act"
                r.what_to_do = self.manual_restore(p, failed, ran_before=found)
            else:
                r.exit_code = EXIT_CHECK_FAILED
                r.headline = (
                    f"{head}. {env} runs {p}; either {env} is not healthy or the rollback checks "
                    f"of {v} do not describe {p}: fix that before you rely on the rollback"
                )
            return r
        # Staging ran another version before: put it back, proven by its expected checks.
        # The plan holds the return steps: staging ran neither P nor nothing.
        back = self.deploy_and_verify(
            self.step("return-deploy"),
            self.step("return-checks"),
            found,
            p,
            self.items_of(found),
            "rehearse-return",
        )
        if back is None:
            r.exit_code, r.left_on = EXIT_ROLLED_BACK, found
            r.headline = f"{head}. {env} runs {found} again, as before the rehearsal"
        else:
            r.exit_code, r.left_on = EXIT_ROLLBACK_FAILED, None
            r.headline = f"{head}, and putting {found} back failed too: {env} needs a person now"
            r.what_to_do = self.manual_restore(found, back, ran_before=found)
        return r

    def version_failed(self, failed: StepResult) -> Rehearsal:
        r = self.result
        v, p, env = self.version, self.previous, self.env
        r.failed = failed
        why = failed.detail or failed.outcome
        ok, results, took = self.roll_back(self.release, v, f"{failed.step.id} failed: {why}")
        if ok:
            r.outcome, r.exit_code, r.left_on = "failed_checks_restored", EXIT_ROLLED_BACK, p
            r.timings.restore_ms = took
            r.headline = (
                f"{v} failed at {failed.step.id} ({why}); the rollback restored {p} in "
                f"{took / 1000:.1f}s {self.proof()}: {env} stays on {p}"
            )
            return r
        r.outcome, r.exit_code, r.left_on = "restore_failed", EXIT_ROLLBACK_FAILED, None
        last = results[-1] if results else failed
        where = f"{env} may run the broken {v}"
        if _redeployed(results):
            # Only the checks failed: P is deployed, and the journal says so; nothing proves it.
            r.left_on = p
            where = f"its redeploy finished, so {env} runs {p}, and nothing proves it works"
        r.headline = (
            f"{v} failed at {failed.step.id} AND the rollback to {p} failed at {last.step.id}: "
            f"{where}; a person must act now"
        )
        r.what_to_do = self.manual_restore(p, last, ran_before=r.found)
        return r

    def restore_failed_after_pass(self, results: list[StepResult]) -> Rehearsal:
        r = self.result
        v, p, env = self.version, self.previous, self.env
        last = results[-1] if results else None
        r.outcome, r.exit_code, r.failed = "restore_failed", EXIT_ROLLBACK_FAILED, last
        at = last.step.id if last else "its start"
        # V passed its checks a moment ago: it is the working version to leave staging on.
        back = self.deploy_and_verify(
            self.extra_step("fallback-deploy", f"fall back: deploy {v} again", version=v),
            self.extra_step("fallback-checks", f"fall back: expected checks of {v}"),
            v,
            p,
            expected_items(self.runbook, self.release),
            "rehearse-fallback",
        )
        steps = self.fix_rollback(last)
        if back is None:
            r.left_on = v
            r.headline = (
                f"the rollback of {v} to {p} FAILED at {at}; {env} runs {v} again, which passes "
                f"its checks. Do not release {v} until its rollback works"
            )
            r.what_to_do = steps
        else:
            r.left_on = None
            r.headline = (
                f"the rollback of {v} to {p} FAILED at {at}, and {v} failed when deployed again: "
                f"{env} needs a person now"
            )
            r.what_to_do = [*self.manual_restore(p, last or back, ran_before=r.found), *steps]
        return r

    def return_to_start(self) -> Rehearsal:
        r = self.result
        v, p, env = self.version, self.previous, self.env
        end = end_version(v, r.found)
        restored = (r.timings.restore_ms or 0) / 1000
        proven = f"the rollback to {p} took {restored:.1f}s {self.proof()}"
        if end == p:
            r.headline = f"rehearsal of {v} passed: {proven}; {env} stays on {p}, as it was"
            return r
        started = self.clock()
        failed = self.deploy_and_verify(
            self.step("return-deploy"),
            self.step("return-checks"),
            end,
            p,
            self.items_of(end),
            "rehearse-return",
        )
        r.timings.redeploy_ms = _ms(self.clock() - started)
        if failed is None:
            r.left_on = end
            again = "again, as before the rehearsal" if r.found is not None else "again"
            r.headline = f"rehearsal of {v} passed: {proven}; {env} runs {end} {again}"
            return r
        # The version failed on its second deploy: a flaky release. Back to P, proven by the
        # rollback checks of V, which proved P twice in this run; those of `end` describe the
        # version below `end`, which is P only when `end` is V.
        r.failed = failed
        ok, results, took = self.roll_back(
            self.releases_between(end),
            end,
            f"{failed.step.id} failed: {failed.detail}",
            proven_by=self.release,
        )
        if ok:
            # V and its rollback proved themselves: what failed is the version put back.
            r.outcome, r.exit_code, r.left_on = "return_failed", EXIT_ROLLED_BACK, p
            r.headline = (
                f"{proven}, but {end} failed at {failed.step.id} when deployed again; rolled "
                f"back to {p} again in {took / 1000:.1f}s: {env} stays on {p}"
            )
        else:
            r.outcome, r.exit_code, r.left_on = "restore_failed", EXIT_ROLLBACK_FAILED, None
            last = results[-1] if results else failed
            unproven = ""
            if _redeployed(results):
                r.left_on = p
                unproven = f" (its redeploy finished: {env} runs {p}, and nothing proves it works)"
            r.headline = (
                f"{end} failed at {failed.step.id} when deployed again, and the second rollback "
                f"to {p} failed at {last.step.id}{unproven}: {env} needs a person now"
            )
            r.what_to_do = self.manual_restore(p, last, ran_before=r.found)
        return r

    def proof(self) -> str:
        """What proved the rollback, after "the rollback took 1.2s": no checks pass vacuously."""
        if rollback_items(self.runbook, self.release):
            return "and its checks pass"
        return (
            f"but no rollback checks describe {self.previous}, so nothing proved it worked "
            f"(add checks under the rollback of {self.version}'s changes)"
        )

    # --- what a person must do ------------------------------------------------------------

    def manual_restore(
        self, target: str, failed: StepResult, *, ran_before: str | None
    ) -> list[str]:
        """Steps a person takes to put `target` back on the environment by hand."""
        env = self.env
        runbook = self.runbook
        lines = [f"look at the failed step {failed.step.id}: {failed.detail or failed.outcome}"]
        if failed.output_tail:
            last = failed.output_tail.strip().splitlines()[-1:]
            if last:
                lines[-1] += f" (last output: {last[0]})"
        if runbook.deploy is not None:
            values = {**placeholders(runbook, env, target, self.version)}
            command = shlex.join(command_of(runbook.deploy, values))
            lines.append(f"put {target} back on {env} by hand: `{command}`")
        items = (
            rollback_items(runbook, self.release)
            if target == self.previous
            else self.items_of(target)
        )
        if items:
            proofs = "; ".join(f"{i.label}: {describe_check(i.check)}" for i in items)
            lines.append(f"prove it: {proofs}")
        if ran_before is not None and ran_before != target:
            lines.append(f"before the rehearsal {env} ran {ran_before}")
        page = runbook.escalation or runbook.owner
        lines.append(
            f"page {page}; the journal .drillbook/journal/{self.session.run_id}.jsonl "
            "holds every step and check"
        )
        return lines

    def fix_rollback(self, failed: StepResult | None) -> list[str]:
        """What to do when V works and its rollback does not."""
        v, p = self.version, self.previous
        lines = []
        if failed is not None:
            lines.append(
                f"fix the rollback step that failed, {failed.step.id}: "
                f"{failed.detail or failed.outcome}"
            )
        owners = sorted({c.owner for c in self.release.changes})
        lines.append(
            f"then rehearse again (`drillbook rehearse --version {v}`) before releasing {v}: "
            f"a rollback to {p} in production would fail the same way (owners: "
            f"{', '.join(owners)})"
        )
        return lines


def rehearse_flow(
    session: RunSession,
    plan: Plan,
    release: Release,
    *,
    found: str | None,
    clock: Callable[[], float] = time.monotonic,
) -> Rehearsal:
    """Run a rehearsal plan; never raises for a failed step or check, only for a stop."""
    result = _Flow(session, plan, release, found, clock).run()
    result.timings.total_ms = session.elapsed_ms()
    return result


# --- report -----------------------------------------------------------------------------------


class ReportRun(Protocol):
    """What a report says of its run: a `RunSession`, or the stand-in of a preflight render."""

    @property
    def loaded(self) -> LoadedRunbook: ...
    @property
    def env(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def started_wall(self) -> float: ...


@dataclass(frozen=True)
class _ThisRun:
    """The run a report's preflight render speaks of, before the run has begun."""

    loaded: LoadedRunbook
    env: str
    run_id: str = "(this run)"
    started_wall: float = field(default_factory=time.time)


def report_paths(session: ReportRun, version: str) -> tuple[str, str]:
    """Where the report goes, relative to the project: Markdown and JSON."""
    stem = f"reports/{session.loaded.runbook.service}-{version}-rehearsal-{session.run_id}"
    return f"{stem}.md", f"{stem}.json"


def _step_data(result: StepResult) -> dict[str, Any]:
    return {
        "step": result.step.id,
        "title": result.step.title,
        "outcome": result.outcome,
        "duration_ms": result.duration_ms,
        "detail": result.detail,
        "checks": [
            {
                "check": c.name,
                "outcome": c.outcome,
                "expected": c.expected,
                "got": c.got,
                "message": c.message,
                "duration_ms": c.duration_ms,
            }
            for c in result.checks
        ],
    }


def report_data(session: ReportRun, release: Release, result: Rehearsal) -> dict[str, Any]:
    """Everything a report holds, as plain data; the JSON report is exactly this."""
    runbook = session.loaded.runbook
    md, js = report_paths(session, release.version)
    return {
        "service": runbook.service,
        "owner": runbook.owner,
        "escalation": runbook.escalation,
        "env": session.env,
        "version": result.version,
        "previous": result.previous,
        "found_version": result.found,
        "left_on": result.left_on,
        "run": session.run_id,
        "started": datetime.fromtimestamp(session.started_wall, UTC).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        ),
        "outcome": result.outcome,
        "outcome_text": OUTCOME_WORDS.get(result.outcome, result.outcome.replace("_", " ")),
        "exit": result.exit_code,
        "headline": result.headline,
        "timings": result.timings.as_dict(),
        "failed_step": result.failed.step.id if result.failed else None,
        "failed_checks": result.failed_checks,
        "what_to_do": list(result.what_to_do),
        "rollback_command": rollback_command(session.env, result.previous),
        "rollback_checks": [
            f"{item.label}: {describe_check(item.check)}"
            for item in rollback_items(runbook, release)
        ],
        "changes": [
            {
                "id": c.id,
                "title": c.title,
                "owner": c.owner,
                "rollback": c.rollback.text,
                "retry_safe": c.rollback.retry_safe,
            }
            for c in release.changes
        ],
        "steps": [_step_data(s) for s in result.steps],
        "runbook": session.loaded.display_path,
        "runbook_sha256": session.loaded.sha256,
        "journal": f".drillbook/journal/{session.run_id}.jsonl",
        "report_md": md,
        "report_json": js,
    }


def require_report_renders(
    loaded: LoadedRunbook, env: str, plan: Plan, release: Release, found: str | None
) -> None:
    """Render the project's own report template once, before the first deploy, with the data
    of a rehearsal of `plan` that passed; nothing when the project has none.

    drillbook's default is tested; a project's (a syntax error, an undefined name, a missing
    include) is found broken here, as bad input (exit 2), and not once staging has been
    deployed and rolled back, when the rehearsal could only end without its report.
    """
    from drillbook.render import overridden, render

    if not overridden(loaded.root, REPORT_TEMPLATE):
        return
    previous = plan.previous or ""
    items = {
        "baseline-checks": rollback_items(loaded.runbook, release),
        "integration": expected_items(loaded.runbook, release),
    }
    end = end_version(release.version, found)
    end_release = loaded.runbook.release(end)
    items["return-checks"] = expected_items(loaded.runbook, end_release) if end_release else []
    result = Rehearsal(release.version, previous, found, left_on=end, timings=Timings(0, 0, 0, 0))
    result.headline = f"rehearsal of {release.version} passed (this run)"
    result.steps = [
        StepResult(step, "ok", checks=[_passed(item) for item in items.get(step.id, [])])
        for step in plan.steps
    ]
    if end != previous:
        result.timings.redeploy_ms = 0
    result.timings.total_ms = 0
    masker = masker_for(loaded)
    data = masker.mask_obj(report_data(_ThisRun(loaded, env), release, result))
    try:
        render(REPORT_TEMPLATE, data, project_root=loaded.root, masker=masker)
    except UsageError as exc:
        exc.message += "; found before the first step, nothing ran"
        raise


def _passed(item: CheckItem) -> CheckResult:
    """A check that passed, as a report shows it."""
    from drillbook.checks import CheckResult

    expected = describe_check(item.check)
    return CheckResult(item.label, "pass", expected, "(this run)", "", 1, 0, True, "")


def write_report(session: RunSession, release: Release, result: Rehearsal) -> dict[str, Any]:
    """Write the JSON report, then render the Markdown one, both atomically; the data.

    The JSON comes first and needs no template: a project's report template that fails to
    render (raised here) still leaves the figures on disk.
    """
    from drillbook.commands import as_typed
    from drillbook.files import write_atomic
    from drillbook.render import render_to

    data = as_typed(session.masker.mask_obj(report_data(session, release, result)))
    root = session.root
    write_atomic(root / data["report_json"], json.dumps(data, indent=2) + "\n")
    result.report_json = data["report_json"]
    render_to(
        root / data["report_md"],
        REPORT_TEMPLATE,
        data,
        project_root=root,
        masker=session.masker,
    )
    result.report_md = data["report_md"]
    return data


def finish_rehearsal(session: RunSession, release: Release, result: Rehearsal) -> dict[str, Any]:
    """Write the report and the `rehearsal_finished` event; the report's data.

    A report that cannot be written does not undo what the rehearsal proved: the event is
    written all the same, with the report paths empty and the reason in `report_error`.
    """
    from drillbook.errors import DrillbookError

    error = None
    try:
        data = write_report(session, release, result)
    except (DrillbookError, OSError) as exc:
        error = exc.message if isinstance(exc, DrillbookError) else f"{type(exc).__name__}: {exc}"
        data = session.masker.mask_obj(report_data(session, release, result))
        data["report_md"] = None
        data["report_json"] = result.report_json  # written before the Markdown failed, or None
    t = result.timings
    session.event(
        "rehearsal_finished",
        outcome=result.outcome,
        version=result.version,
        previous=result.previous,
        baseline_ms=t.baseline_ms,
        deploy_ms=t.deploy_ms,
        verify_ms=t.verify_ms,
        restore_ms=t.restore_ms,
        redeploy_ms=t.redeploy_ms,
        total_ms=t.total_ms,
        report_md=data["report_md"],
        report_json=data["report_json"],
        runbook_sha256=session.loaded.sha256,
        failed_checks=result.failed_checks,
        found_version=result.found,
        left_on=result.left_on,
        exit=result.exit_code,
        report_error=error,
    )
    if error is not None:
        data["report_error"] = error
    return data
