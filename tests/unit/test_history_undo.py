"""The undo line of `history`: what a person types, or why there is nothing safe to type."""

from __future__ import annotations

import shutil
from pathlib import Path

from _docs_project import FIXTURE, T0, write_run

from drillbook.history import entries


def project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    shutil.copytree(FIXTURE, root)
    return root


def only(root: Path, run: str):
    return next(e for e in entries(root) if e.run == run)


def test_a_release_whose_rollback_failed_needs_a_person(tmp_path: Path) -> None:
    root = project(tmp_path)
    # The rollback deployed 1.1.0 again, then its checks failed: 1.1.0 runs, unproven.
    write_run(
        root,
        "20261118T090000Z-aaaaaa",
        T0,
        "release",
        "staging",
        "1.2.0",
        [
            ("deployed", {"version": "1.2.0", "previous": "1.1.0", "by": "release"}),
            ("deployed", {"version": "1.1.0", "previous": "1.2.0", "by": "rollback"}),
        ],
        outcome="rollback_failed",
        previous="1.1.0",
    )
    entry = only(root, "20261118T090000Z-aaaaaa")
    assert entry.outcome == "rollback failed"
    assert entry.undo == (
        "a person must act: the rollback to 1.1.0 failed (a step or its checks), so staging is "
        "in an unknown state; start with the run's journal (expected and got); once the cause "
        "is fixed, `drillbook deploy --env staging --version 1.1.0`"
    )


def test_a_rollback_that_failed_before_its_redeploy_is_run_again_not_skipped_by_a_deploy(
    tmp_path: Path,
) -> None:
    root = project(tmp_path)
    # A rollback step failed: the redeploy never ran, the journal still says 1.2.0 runs, and
    # a deploy of 1.1.0 would leave out the rollback steps that did not run.
    failed_step = ("step_finished", {"step": "rollback-step:basket:1", "outcome": "failed"})
    for run, kind, ran_before, safe in (
        ("20261118T090000Z-aaaaa1", "release", [("deployed", {"by": "release"})], True),
        ("20261118T100000Z-aaaaa2", "rollback", [], False),
    ):
        write_run(
            root,
            run,
            T0 + (3600 if kind == "rollback" else 0),
            kind,
            "staging",
            "1.2.0",
            [
                *ran_before,
                ("rollback_started", {"to_version": "1.1.0", "retry_safe": safe}),
                failed_step,
                ("rollback_finished", {"outcome": "failed", "to_version": "1.1.0"}),
            ],
            outcome="rollback_failed",
            previous="1.1.0",
            to_version="1.1.0",
        )
    release, rollback = only(root, "20261118T090000Z-aaaaa1"), only(root, "20261118T100000Z-aaaaa2")
    again = (
        "once the cause is fixed, `drillbook rollback --env staging --to 1.1.0` runs it again "
        "from its first step"
    )
    assert release.undo.endswith(again), release.undo
    assert rollback.undo.endswith(
        f"{again} (not safe to run twice: check what its steps did first)"
    ), rollback.undo
    assert "drillbook deploy" not in release.undo + rollback.undo

    # The release's own deploy failed: the journal never said 1.2.0 runs, so only a deploy
    # puts 1.1.0 back (a rollback would go below it).
    write_run(
        root,
        "20261118T110000Z-aaaaa3",
        T0 + 7200,
        "release",
        "staging",
        "1.2.0",
        [
            ("step_finished", {"step": "deploy", "kind": "deploy", "outcome": "failed"}),
            ("rollback_started", {"to_version": "1.1.0", "retry_safe": True}),
            failed_step,
        ],
        outcome="rollback_failed",
        previous="1.1.0",
    )
    assert only(root, "20261118T110000Z-aaaaa3").undo.endswith(
        "once the cause is fixed, `drillbook deploy --env staging --version 1.1.0`"
    )


def test_a_release_whose_rollback_was_cut_short_after_its_redeploy_needs_a_check(
    tmp_path: Path,
) -> None:
    root = project(tmp_path)
    # Ctrl-C during the rollback checks: 1.1.0 was deployed again, and nothing proved it.
    write_run(
        root,
        "20261118T090000Z-abcabc",
        T0,
        "release",
        "staging",
        "1.2.0",
        [
            ("deployed", {"version": "1.2.0", "previous": "1.1.0", "by": "release"}),
            ("rollback_started", {"from_version": "1.2.0", "to_version": "1.1.0"}),
            ("deployed", {"version": "1.1.0", "previous": "1.2.0", "by": "rollback"}),
            ("step_started", {"step": "rollback-checks", "kind": "checks"}),
        ],
        outcome="interrupted",
        previous="1.1.0",
    )
    entry = only(root, "20261118T090000Z-abcabc")
    assert not entry.undo.startswith("nothing to undo")
    assert entry.undo == (
        "a person must check: the rollback to 1.1.0 was cut short before its checks proved "
        "it; `drillbook integration --env staging --version 1.1.0` checks 1.1.0 there"
    )


def test_a_run_that_another_resumed_points_at_it(tmp_path: Path) -> None:
    root = project(tmp_path)
    write_run(
        root,
        "20261118T090000Z-bbbbbb",
        T0,
        "release",
        "staging",
        "1.2.0",
        [
            ("deployed", {"version": "1.2.0", "previous": "1.1.0", "by": "release"}),
            ("run_closed", {"how": "resumed", "by": "20261118T091000Z-cccccc"}),
        ],
        outcome="interrupted",
        previous="1.1.0",
    )
    entry = only(root, "20261118T090000Z-bbbbbb")
    assert entry.undo == "see run 20261118T091000Z-cccccc, which resumed this one"


def test_a_failed_deploy_goes_back_to_what_it_found(tmp_path: Path) -> None:
    root = project(tmp_path)
    write_run(
        root,
        "20261118T090000Z-dddddd",
        T0,
        "deploy",
        "staging",
        "1.2.0",
        [("step_started", {"step": "deploy", "changes": True})],
        outcome="failed",
        found_version="1.1.0",
    )
    entry = only(root, "20261118T090000Z-dddddd")
    assert entry.previous == "1.1.0"
    # `rollback --to 1.1.0` would be refused: the journal still says 1.1.0 runs.
    assert entry.undo == "drillbook deploy --env staging --version 1.1.0"


def test_commands_name_the_service_when_a_project_has_several() -> None:
    from drillbook.commands import for_service

    assert for_service("drillbook rollback --env staging --to 1.0.0", "shop") == (
        "drillbook rollback --service shop --env staging --to 1.0.0"
    )
    assert for_service("drillbook rollback-note --version 1.0.0", "shop") == (
        "drillbook rollback-note --service shop --version 1.0.0"
    )
    text = "the journal does not say what ran before: drillbook deploy --env staging"
    assert for_service(text, "pay") == (
        "the journal does not say what ran before: drillbook deploy --service pay --env staging"
    )
    # Project-wide commands, and commands that already name one, are left as they are.
    assert for_service("drillbook history --since all", "shop") == "drillbook history --since all"
    assert for_service("drillbook deploy --service pay --env s", "shop") == (
        "drillbook deploy --service pay --env s"
    )
    assert for_service({"a": ["drillbook tag"]}, "shop") == {"a": ["drillbook tag --service shop"]}


def test_a_rehearsal_whose_rollback_was_cut_short_after_its_redeploy_needs_a_check(
    tmp_path: Path,
) -> None:
    root = project(tmp_path)
    # Ctrl-C during the rehearsal's rollback checks: 1.1.0, as found, was deployed again, and
    # nothing proved it; "nothing to undo (left on 1.1.0, as found)" would say it was.
    write_run(
        root,
        "20261118T090000Z-bcdbcd",
        T0,
        "rehearse",
        "staging",
        "1.2.0",
        [
            ("deployed", {"version": "1.1.0", "by": "rehearse-baseline"}),
            ("deployed", {"version": "1.2.0", "previous": "1.1.0", "by": "rehearse"}),
            ("rollback_started", {"from_version": "1.2.0", "to_version": "1.1.0"}),
            ("deployed", {"version": "1.1.0", "previous": "1.2.0", "by": "rollback"}),
            ("step_started", {"step": "rollback-checks", "kind": "checks"}),
        ],
        outcome="interrupted",
        previous="1.1.0",
        found_version="1.1.0",
    )
    entry = only(root, "20261118T090000Z-bcdbcd")
    assert not entry.undo.startswith("nothing to undo"), entry.undo
    assert entry.undo == (
        "a person must check: the rollback to 1.1.0 was cut short before its checks proved "
        "it; `drillbook integration --env staging --version 1.1.0` checks 1.1.0 there"
    )
