"""Run planned steps: commands and checks, each journaled as it starts and as it ends.

A failed step or check is a result and an event, not an exception; the flows in `release`
decide what follows. Only an interruption or an unwritable journal stops a run here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drillbook.errors import Interrupted
from drillbook.leftovers import RUN_VARIABLE
from drillbook.plan import PlannedStep, fill_env, placeholders, step_env

if TYPE_CHECKING:
    from drillbook.checks import CheckResult
    from drillbook.model import HttpCheck, RunCheck, Step
    from drillbook.session import RunSession


@dataclass
class StepResult:
    """How one step ended."""

    step: PlannedStep
    outcome: str  # ok, failed, timeout, not_found, error, interrupted, skipped, done
    duration_ms: int = 0
    detail: str = ""
    exit: int | None = None
    output_tail: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the step succeeded (or was already done)."""
        return self.outcome in ("ok", "done", "skipped")


@dataclass(frozen=True)
class CheckItem:
    """A check to run in a checks step, with who it belongs to."""

    label: str
    check: HttpCheck | RunCheck
    change: str | None = None
    owner: str | None = None


class Executor:
    """Runs the steps of one session, printing one progress line per step."""

    def __init__(
        self,
        session: RunSession,
        *,
        total: int,
        done: frozenset[str] = frozenset(),
        quiet_output: bool = False,
    ) -> None:
        self.session = session
        self.total = total
        self.index = 0
        self.phase = ""
        self.done = done
        self.quiet_output = quiet_output
        self.results: list[StepResult] = []

    # --- progress ---------------------------------------------------------------------------

    def begin_phase(self, name: str, total: int) -> None:
        """Count the next `total` steps apart, as `[name 1/total]`: a rollback that starts
        after step 6 of 8 reads `[rollback 1/3]`, not `[7/11]` of a release that stopped."""
        self.phase, self.index, self.total = name, 0, total

    def _start_line(self, step: PlannedStep) -> None:
        self.index += 1
        console = self.session.console
        phase = f"{self.phase} " if self.phase else ""
        counter = console.paint(f"[{phase}{self.index}/{self.total}]", "dim")
        console.print(f"{counter} {step.title}")

    def _end_line(self, result: StepResult) -> None:
        console = self.session.console
        seconds = result.duration_ms / 1000
        detail = f" - {result.detail}" if result.detail and not result.ok else ""
        if result.outcome == "done":
            detail = f" - {result.detail}" if result.detail else ""
        console.print(
            f"      {console.outcome(result.outcome)} {result.step.id} ({seconds:.1f}s){detail}"
        )

    def _check_interrupt(self) -> None:
        signum = self.session.stop.signum
        if signum is not None:
            import signal

            name = signal.Signals(signum).name
            msg = f"interrupted by {name}; the journal records where the run stopped"
            raise Interrupted(signum, msg)

    def command_started(self, step: PlannedStep) -> Callable[[int], None]:
        """What records each command a step starts: its pid and process group (`leftovers`)."""

        def record(pid: int) -> None:
            # Not fsynced on its own: the pid is of use only while this machine stays up (to
            # find what a killed drillbook left running), and a killed process loses no write.
            self.session.event("command_started", sync=False, step=step.id, pid=pid, pgid=pid)

        return record

    # --- generic step -------------------------------------------------------------------------

    def run(self, step: PlannedStep, action: Callable[[], StepResult]) -> StepResult:
        """Run one step: journal it, time it, print its outcome."""
        self._check_interrupt()
        session = self.session
        if step.id in self.done:
            self._start_line(step)
            result = StepResult(step, "done", detail="finished in the interrupted run")
            session.event(
                "step_skipped",
                sync=step.changes,
                step=step.id,
                kind=step.kind,
                # A resume that skips a deploy still carries it: history reads this run, not
                # the one it resumed, for what was changed and how to undo it.
                changes=step.changes,
                reason="finished before the resume",
            )
            self._end_line(result)
            self.results.append(result)
            return result
        self._start_line(step)
        # A step that changes nothing is journaled without an fsync of its own; the next event
        # of a changing step (or the end of the run) syncs it. A step that changes something
        # is on disk before it starts, and its end as soon as it ends.
        session.event(
            "step_started",
            sync=step.changes,
            step=step.id,
            kind=step.kind,
            title=step.title,
            changes=step.changes,
            argv=list(step.argv) if step.argv else None,
            change=step.change,
            owner=step.owner,
        )
        started = time.monotonic()
        result = action()
        result.duration_ms = round((time.monotonic() - started) * 1000)
        fields: dict[str, Any] = {
            "step": step.id,
            "kind": step.kind,
            "outcome": result.outcome,
            "duration_ms": result.duration_ms,
            "changes": step.changes,
        }
        if result.exit is not None:
            fields["exit"] = result.exit
        if result.detail:
            fields["detail"] = result.detail
        if result.output_tail:
            fields["output_tail"] = result.output_tail
        if step.argv:
            fields["argv"] = list(step.argv)
        if step.change:
            fields["change"] = step.change
            fields["owner"] = step.owner
        fields.update(result.data)
        session.event("step_finished", sync=step.changes, **fields)
        self._end_line(result)
        self.results.append(result)
        if result.outcome == "interrupted":
            self._check_interrupt()
        return result

    # --- commands ----------------------------------------------------------------------------

    def command(
        self,
        step: PlannedStep,
        spec: Step,
        *,
        version: str | None,
        previous: str | None,
        extra_env: dict[str, str] | None = None,
    ) -> StepResult:
        """Run a command step in its own process group, streaming its output."""
        from drillbook.process import run_command

        session = self.session
        runbook = session.loaded.runbook
        values = placeholders(runbook, session.env, version, previous)
        env = {**step_env(values), **fill_env(spec.env, values), **(extra_env or {})}
        environment = runbook.environments.get(session.env)
        if environment is not None:
            env.update(fill_env(environment.deploy_env, values))
        # Which run started it: how a later run finds what this one left running if it dies.
        env[RUN_VARIABLE] = session.run_id
        console = session.console
        prefix = console.paint(f"      {step.id} │ ", "dim")

        def on_line(line: str) -> None:
            if not self.quiet_output:
                console.print(prefix + line, verbatim=True)

        def action() -> StepResult:
            cwd = session.root / spec.cwd if spec.cwd else session.root
            argv: Sequence[str] | str
            if spec.shell and isinstance(spec.run, str):
                argv = spec.run
            else:
                argv = list(step.argv or ())
            result = run_command(
                argv,
                cwd=cwd,
                env=env,
                shell=spec.shell,
                timeout=spec.timeout,
                on_line=on_line,
                masker=session.masker,
                stop=session.stop,
                on_start=self.command_started(step),
            )
            return StepResult(
                step,
                result.outcome,
                detail=result.detail,
                exit=result.exit,
                output_tail=result.output_tail,
            )

        return self.run(step, action)

    # --- checks ------------------------------------------------------------------------------

    def checks(
        self,
        step: PlannedStep,
        items: Sequence[CheckItem],
        *,
        version: str | None,
        previous: str | None,
        session_http: Any = None,
    ) -> StepResult:
        """Run checks against the session's environment; only pass passes."""
        from drillbook.checks import CheckRunner

        session = self.session
        runbook = session.loaded.runbook
        console = session.console

        def action() -> StepResult:
            runner = CheckRunner(
                runbook.environments[session.env],
                env_name=session.env,
                session=session_http,
                masker=session.masker,
                cwd=session.root,
                placeholders=placeholders(runbook, session.env, version, previous),
                stop=session.stop,
                command_env={RUN_VARIABLE: session.run_id},
                on_command_start=self.command_started(step),
            )
            try:
                results = runner.run_many([(item.label, item.check) for item in items])
            finally:
                if session_http is None:
                    runner.close()
            failed = 0
            for item, res in zip(items, results, strict=True):
                # A command check names its command and exit, as a command step does, so that
                # the journal answers "what ran, and how did it end" the same way for both.
                command: dict[str, Any] = {}
                if res.argv is not None:
                    command = {"argv": list(res.argv), "exit": res.exit}
                    if res.excerpt:  # as in step_finished: no output, no output_tail
                        command["output_tail"] = res.excerpt
                session.event(
                    "check_finished",
                    sync=False,
                    step=step.id,
                    check=item.label,
                    change=item.change,
                    owner=item.owner,
                    outcome=res.outcome,
                    expected=res.expected,
                    got=res.got,
                    message=res.message,
                    retry_safe=res.retry_safe,
                    attempts=res.attempts,
                    duration_ms=res.duration_ms,
                    excerpt=res.excerpt or None,
                    **command,
                )
                mark = console.outcome(res.outcome)
                owner = f" [{item.change}, {item.owner}]" if item.change else ""
                console.print(f"        {mark} {item.label}{owner}: {res.message}")
                if res.outcome != "pass":
                    failed += 1
            outcome = "ok" if failed == 0 else "failed"
            if session.stop.signum is not None:
                outcome = "interrupted"
            detail = f"{failed} of {len(items)} checks did not pass" if failed else ""
            return StepResult(step, outcome, detail=detail, checks=list(results))

        return self.run(step, action)
