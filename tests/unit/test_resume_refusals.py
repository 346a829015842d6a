"""A run that had failed is not resumed as a release: its rollback is finished by hand."""

from __future__ import annotations

import pytest

from drillbook.errors import PreconditionFailed
from drillbook.tasks.resume import _require_resumable

FIRST = {"event": "run_started", "env": "staging", "previous": "1.0.0", "version": "1.1.0"}


def step(name: str, outcome: str) -> dict[str, str]:
    return {"event": "step_finished", "step": name, "outcome": outcome}


def test_an_interrupted_run_whose_steps_passed_resumes() -> None:
    _require_resumable("r1", FIRST, [FIRST, step("lint", "ok"), step("unit", "interrupted")])


def test_a_run_stopped_during_its_rollback_is_refused_naming_the_rollback() -> None:
    events = [
        FIRST,
        step("deploy", "ok"),
        step("integration", "failed"),
        {"event": "rollback_started", "from_version": "1.1.0", "to_version": "1.0.0"},
        step("rollback-step:feature:1", "interrupted"),
    ]
    with pytest.raises(PreconditionFailed) as refused:
        _require_resumable("r2", FIRST, events)
    assert refused.value.message == (
        "run r2 was rolling staging back to 1.0.0 when it stopped: it cannot be resumed as a "
        "release"
    )
    # Abandon first: until then the rollback refuses to start, naming this run.
    assert refused.value.hint == (
        "`drillbook abandon r2` closes it (and stops what it left running); then "
        "`drillbook rollback --env staging --to 1.0.0` rolls back and proves it"
    )


def test_a_run_whose_checks_failed_is_refused_even_before_its_rollback_began() -> None:
    # A check that failed once and passes on a second try must not get the release tagged.
    events = [FIRST, step("deploy", "ok"), step("integration", "failed")]
    with pytest.raises(PreconditionFailed) as refused:
        _require_resumable("r3", FIRST, events)
    assert "had failed at integration" in refused.value.message


def test_a_run_stopped_after_its_redeploy_points_to_the_proof_not_to_a_rollback() -> None:
    # `rollback --to 1.0.0` refuses while staging runs 1.0.0: only the checks are left.
    events = [
        FIRST,
        step("deploy", "ok"),
        step("integration", "failed"),
        {"event": "rollback_started", "from_version": "1.1.0", "to_version": "1.0.0"},
        step("rollback-deploy", "ok"),
        {"event": "deployed", "version": "1.0.0", "by": "rollback"},
        step("rollback-checks", "interrupted"),
    ]
    with pytest.raises(PreconditionFailed) as refused:
        _require_resumable("r4", FIRST, events)
    assert "its redeploy had finished, so staging runs 1.0.0, not yet proven" in (
        refused.value.message
    )
    assert refused.value.hint == (
        "`drillbook abandon r4` closes it (and stops what it left running); then "
        "`drillbook integration --env staging --version 1.0.0` checks 1.0.0 there"
    )
