"""`drillbook release` end to end: a real service on loopback, real git, the real console script.

Every test drives the `drillbook` program as a subprocess in a fixture project and judges it by
its exit code, what it printed, the journal (read line by line as JSON), git and the service.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _project import DRILLBOOK, KILLER, SECRET_KEY, Project


def steps(events: list[dict], name: str) -> list[str]:
    """The `step` of every event called `name`, in order."""
    return [e["step"] for e in events if e["event"] == name]


def by_name(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["event"] == name]


# --- a good release ---------------------------------------------------------------------------


def test_a_good_release_tags_writes_the_note_and_journals_every_step(shop: Project) -> None:
    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 0, result
    assert "release 1.0.0 of shop is done on staging" in result.out
    assert shop.served_version() == "1.0.0"
    # The annotated tag holds the changes, their owners and the rollback summary.
    assert shop.git("cat-file", "-t", "v1.0.0") == "tag"
    message = shop.git("tag", "-l", "--format=%(contents)", "v1.0.0")
    assert "catalogue: List the products (owner: alice)" in message
    assert "expected: /health answers ok and /version says 1.0.0." in message
    assert "rollback: Nothing to go back to; stop the service." in message
    note = shop.root / "notes" / "shop-1.0.0-rollback.md"
    assert note.is_file()
    assert "alice" in note.read_text()

    # Every line of the journal is JSON with ts, run, seq (increasing) and event.
    [journal] = shop.journals()
    lines = journal.read_text().splitlines()
    events = [json.loads(line) for line in lines]
    run_id = journal.stem
    assert all({"ts", "run", "seq", "event"} <= e.keys() for e in events)
    assert all(e["run"] == run_id for e in events)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "run_started"
    assert events[-1]["event"] == "run_finished"
    assert events[-1]["outcome"] == "ok"
    assert events[-1]["exit"] == 0
    # Read alone, run_started says how to undo the release: a first one has no version to go
    # back to, so it says what history says, not a `drillbook rollback` that is refused.
    [row] = json.loads(shop.run("history", "--format", "json").out)
    assert events[0]["undo"] == row["undo"]
    assert events[0]["undo"].startswith("no earlier version to go back to (first release)")
    planned = ["preflight", "lint", "unit", "verify-config", "deploy", "integration", "tag"]
    planned.append("rollback-note")
    assert steps(events, "step_started") == planned
    assert steps(events, "step_finished") == planned
    assert all(e["outcome"] == "ok" for e in by_name(events, "step_finished"))
    checks = by_name(events, "check_finished")
    assert [c["outcome"] for c in checks] == ["pass", "pass"]
    assert {c["owner"] for c in checks} == {"alice"}
    [deployed] = by_name(events, "deployed")
    assert deployed["version"] == "1.0.0"
    assert deployed["env"] == "staging"
    deploy = next(e for e in by_name(events, "step_finished") if e["step"] == "deploy")
    assert deploy["argv"][:2] == ["python", "deploy.py"]
    assert deploy["exit"] == 0
    assert isinstance(deploy["duration_ms"], int)

    # The next release's tag says the one command that goes back.
    assert shop.run("release", "--version", "1.1.0").code == 0
    message = shop.git("tag", "-l", "--format=%(contents)", "v1.1.0")
    assert message.splitlines()[-1] == "Roll back: drillbook rollback --env staging --to 1.0.0"


def test_the_tag_message_keeps_its_shape_whatever_the_titles_hold(shop: Project) -> None:
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text()
    text = text.replace(
        "title: List the products",
        'title: "List the products\\n# kept, not a comment\\n\\nSigned-off-by: x <x@example.com>"',
    )
    text = text.replace(
        "summary: /health answers ok and /version says 1.0.0.",
        "summary: |\n            #oncall watches /health; Caf\u00e9 \u2615 works.\n"
        "            And a second line.\n",
    )
    runbook.write_text(text)
    shop.commit("odd titles")

    result = shop.run("tag", "--version", "1.0.0")

    assert result.code == 0, result
    message = shop.git("tag", "-l", "--format=%(contents)", "v1.0.0").splitlines()
    assert message[2:5] == [
        "- catalogue: List the products # kept, not a comment Signed-off-by: x <x@example.com> "
        "(owner: alice)",
        "  expected: #oncall watches /health; Caf\u00e9 \u2615 works.",
        "    And a second line.",
    ]
    assert message[5].startswith("  rollback: ")
    # The first release has nothing to go back to: no command that would only refuse.
    assert message[-1] == (
        "Roll back: no earlier released version (first release); undo each change as its "
        "rollback says"
    )


def test_control_characters_in_a_title_reach_the_tag_message_harmless(shop: Project) -> None:
    runbook = shop.root / "runbooks" / "shop.yaml"
    runbook.write_text(
        runbook.read_text().replace(
            "title: List the products", 'title: "List\\0the \\e[31mred\\e[0m products"'
        )
    )
    shop.commit("a title with a NUL and an escape sequence")

    assert shop.run("tag", "--version", "1.0.0").code == 0

    body = subprocess.run(
        ["git", "cat-file", "tag", "v1.0.0"], cwd=shop.root, capture_output=True, check=True
    ).stdout
    assert b"\0" not in body and b"\x1b" not in body
    line = "- catalogue: List\ufffdthe \ufffd[31mred\ufffd[0m products (owner: alice)"
    assert line.encode() in body


def test_the_tag_marks_the_commit_the_gates_judged_even_if_head_moves(shop: Project) -> None:
    judged = shop.git("rev-parse", "HEAD")
    result = shop.run("release", "--version", "1.0.0", FIXTURE_MOVE_HEAD="unit")

    assert result.code == 0, result
    moved = shop.git("rev-parse", "HEAD")
    assert moved != judged
    assert shop.git("rev-parse", "v1.0.0^{commit}") == judged
    [journal] = shop.journals()
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    tag = next(e for e in by_name(events, "step_finished") if e["step"] == "tag")
    assert tag["commit"] == judged
    assert tag["detail"] == f"v1.0.0 created on {judged[:9]}"


def test_the_same_release_twice_changes_nothing_the_second_time(released: Project) -> None:
    shop = released
    tag_object = shop.git("rev-parse", "v1.0.0")
    journals = shop.journals()

    result = shop.run("release", "--version", "1.0.0")

    assert result.code == 0, result
    assert "already done" in result.out
    assert "Nothing changed" in result.out
    assert shop.git("rev-parse", "v1.0.0") == tag_object
    assert shop.tags() == ["v1.0.0"]
    assert shop.journals() == journals
    assert shop.served_version() == "1.0.0"

    as_json = shop.run("release", "--version", "1.0.0", "--format", "json")
    assert as_json.code == 0, as_json
    first = json.loads(released.run("history", "--format", "json").out)[0]
    summary = json.loads(as_json.out)
    assert summary["outcome"] == "already_done"
    assert (summary["action"], summary["service"], summary["env"]) == ("release", "shop", "staging")
    assert summary["version"] == "1.0.0"
    assert summary["artifacts"] == {"tag": "v1.0.0", "note": "notes/shop-1.0.0-rollback.md"}
    assert summary["run"] == first["run"]
    assert summary["journal"] == f".drillbook/journal/{first['run']}.jsonl"
    assert shop.journals() == journals


def test_plan_and_dry_run_of_a_done_release_say_it_changes_nothing(
    released: Project, tmp_path: Path
) -> None:
    shop = released
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True, env=shop.env)
    shop.git("remote", "add", "origin", str(bare))
    before, journals, tag_object = shop.snapshot(), shop.journals(), shop.git("rev-parse", "v1.0.0")

    for args in (("plan", "--version", "1.0.0"), ("release", "--version", "1.0.0", "--dry-run")):
        result = shop.run(*args)
        assert result.code == 0, result
        assert "is already done on staging" in result.out
        assert "a release now changes nothing" in result.out
        assert "[changes]" not in result.out  # no deploy, no note: release runs none of them
    pushing = shop.run("plan", "--version", "1.0.0", "--push", "--format", "json")
    assert pushing.code == 0, pushing
    assert [s["step"] for s in json.loads(pushing.out)["steps"]] == ["push"]

    # And release does what they said: nothing, then only the push.
    assert "Nothing changed" in shop.run("release", "--version", "1.0.0").out
    assert shop.journals() == journals
    pushed = shop.run("release", "--version", "1.0.0", "--push")
    assert pushed.code == 0, pushed
    assert [e["step"] for e in by_name(shop.events(), "step_started")] == ["push"]
    assert shop.snapshot() == before  # the note's bytes too
    assert shop.git("rev-parse", "v1.0.0") == tag_object


# --- a broken release -------------------------------------------------------------------------


def test_a_broken_release_rolls_itself_back(released: Project) -> None:
    shop = released
    result = shop.run("release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0")

    assert result.code == 4, result
    assert shop.tags() == ["v1.0.0"]
    assert shop.served_version() == "1.0.0"
    assert not (shop.root / "notes" / "shop-1.1.0-rollback.md").exists()
    # The incident digest: what failed, expected and got, the owner and where to page.
    assert "incident digest" in result.out
    assert "rolled back to 1.0.0" in result.out
    assert "expected: status 200" in result.out
    assert "got:      status 500" in result.out
    assert "owner: bob (feature)" in result.out
    assert "#shop-oncall" in result.out

    events = shop.events()
    started = by_name(events, "rollback_started")
    finished = by_name(events, "rollback_finished")
    assert len(started) == 1
    assert started[0]["from_version"] == "1.1.0"
    assert started[0]["to_version"] == "1.0.0"
    assert started[0]["retry_safe"] is True  # the change's rollback says so
    assert finished[0]["outcome"] == "ok"
    assert [d["version"] for d in by_name(events, "deployed")] == ["1.1.0", "1.0.0"]
    failed = [c for c in by_name(events, "check_finished") if c["outcome"] != "pass"]
    assert failed[0]["expected"] == "status 200"
    assert failed[0]["got"] == "status 500"
    assert failed[0]["owner"] == "bob"
    assert "tag" not in steps(events, "step_started")
    assert events[-1]["event"] == "run_finished"
    assert events[-1]["outcome"] == "rolled_back"
    assert events[-1]["exit"] == 4


def test_a_rollback_that_fails_too_exits_5_and_says_what_to_do(released: Project) -> None:
    shop = released
    result = shop.run(
        "release",
        "--version",
        "1.1.0",
        FIXTURE_BROKEN="1.1.0",
        FIXTURE_FAIL_DEPLOY="1.0.0",
    )

    assert result.code == 5, result
    assert shop.tags() == ["v1.0.0"]
    assert "the rollback failed at rollback-deploy" in result.out
    assert "a person must act" in result.out
    # The release stopped before its note step: the digest points at the runbook, which
    # holds each change's rollback, and not at a note that was never written.
    assert not (shop.root / "notes" / "shop-1.1.0-rollback.md").exists()
    assert "each change's `rollback:` in runbooks/shop.yaml" in result.out
    # History never calls such a run done with: it says a person must act.
    row = json.loads(shop.run("history", "--format", "json").out)[0]
    assert row["outcome"] == "rollback failed"
    assert row["undo"].startswith(
        "a person must act: the rollback to 1.0.0 failed (a step or its checks), so staging is in "
        "an unknown state"
    )
    events = shop.events()
    assert by_name(events, "rollback_finished")[0]["outcome"] == "failed"
    assert events[-1]["outcome"] == "rollback_failed"
    assert events[-1]["exit"] == 5


FIRST_FEATURE = """\
            - get: /version
              expect: {json: {version: 1.0.0}}
        rollback:
          summary: Nothing to go back to; stop the service.
"""


def _first_release_checks_feature(shop: Project, rollback_steps: str = "") -> None:
    """Make 1.0.0 expect /feature (FIXTURE_BROKEN breaks it), with optional rollback steps."""
    path = shop.root / "runbooks" / "shop.yaml"
    text = path.read_text()
    assert FIRST_FEATURE in text
    broken = FIRST_FEATURE.replace(
        "/version\n              expect: {json: {version: 1.0.0}}",
        "/feature\n              expect: {status: 200}",
    )
    path.write_text(text.replace(FIRST_FEATURE, broken + rollback_steps, 1))
    shop.commit("1.0.0 expects /feature")


def test_a_failed_first_release_with_nothing_to_undo_it_is_not_called_rolled_back(
    shop: Project,
) -> None:
    # No earlier version to deploy and no rollback step: nothing can be undone, and staging
    # runs what just failed. Exit 4 ("rolled back") would tell the person on call all is well.
    _first_release_checks_feature(shop)
    result = shop.run("release", "--version", "1.0.0", FIXTURE_BROKEN="1.0.0")

    assert result.code == 5, result
    assert shop.served_version() == "1.0.0"
    assert shop.tags() == []
    assert "could not be rolled back: it is the first release" in result.out
    assert "staging runs 1.0.0" in result.out
    assert "catalogue: Nothing to go back to; stop the service." in result.out
    assert "rolled back to" not in result.out
    events = shop.events()
    assert not by_name(events, "rollback_started")
    assert events[-1]["outcome"] == "failed"
    assert events[-1]["exit"] == 5
    row = json.loads(shop.run("history", "--format", "json").out)[0]
    assert row["outcome"] == "failed"
    assert "nothing to undo" not in row["undo"]


def test_a_failed_first_release_without_auto_rollback_names_its_rollback_words(
    shop: Project,
) -> None:
    # `drillbook rollback` has nowhere to go: the message must not suggest it.
    _first_release_checks_feature(shop)
    result = shop.run("release", "--version", "1.0.0", "--no-auto-rollback", FIXTURE_BROKEN="1.0.0")

    assert result.code == 5, result
    assert "was NOT rolled back (--no-auto-rollback); staging runs 1.0.0, the first" in result.out
    assert "Undo it as its rollback says: catalogue: Nothing to go back to" in result.out
    assert "drillbook rollback --env staging" not in result.out
    assert not by_name(shop.events(), "rollback_started")


def test_a_failed_first_release_is_undone_by_its_changes_rollback_steps(shop: Project) -> None:
    steps = "          steps:\n            - run: [python, -c, \"print('feature off')\"]\n"
    _first_release_checks_feature(shop, steps)
    result = shop.run("release", "--version", "1.0.0", FIXTURE_BROKEN="1.0.0")

    assert result.code == 4, result
    assert "rolled back by its changes' rollback steps (it is the first release" in result.out
    assert "(no earlier version)" not in result.out
    events = shop.events()
    assert [e["step"] for e in by_name(events, "step_finished")][-2:] == [
        "rollback-step:catalogue:1",
        "rollback-checks",
    ]
    assert events[-1]["outcome"] == "rolled_back"


def test_a_first_release_rollback_step_that_needs_previous_is_not_run_with_it_empty(
    shop: Project,
) -> None:
    # `migrate --to {previous}` with nothing before the first release would get `--to ''`.
    steps = (
        "          steps:\n"
        "            - [python, -c, \"import sys; open('var-ran', 'w').write(sys.argv[1])\", "
        "'--to={previous}']\n"
    )
    _first_release_checks_feature(shop, steps)
    plan = shop.run("plan", "--version", "1.0.0")
    assert plan.code == 0, plan
    assert (
        "rollback steps that use {previous} would not run, with no earlier version to fill it "
        "with: rollback-step:catalogue:1"
    ) in plan.out

    result = shop.run("release", "--version", "1.0.0", FIXTURE_BROKEN="1.0.0")

    assert result.code == 5, result
    assert not (shop.root / "var-ran").exists()
    assert "AND the rollback failed at rollback-step:catalogue:1" in result.out
    assert (
        "not run: it uses {previous}, and there is no earlier released version to fill it with"
    ) in result.out
    [step] = [e for e in by_name(shop.events(), "step_finished") if e["step"].startswith("rollb")]
    assert step["outcome"] == "error"
    assert shop.events()[-1]["exit"] == 5
    # The note of a first release leaves the value to find, and does not show it empty.
    assert shop.run("rollback-note", "--version", "1.0.0").code == 0
    note = (shop.root / "notes" / "shop-1.0.0-rollback.md").read_text()
    assert "--to={previous}" in note
    assert "'--to='" not in note


def test_no_auto_rollback_leaves_the_environment_and_says_how_to_undo(released: Project) -> None:
    shop = released
    result = shop.run("release", "--version", "1.1.0", "--no-auto-rollback", FIXTURE_BROKEN="1.1.0")

    assert result.code == 5, result
    assert "NOT rolled back" in result.out
    assert "drillbook rollback --env staging --to 1.0.0" in result.out
    assert shop.served_version() == "1.1.0"
    assert shop.tags() == ["v1.0.0"]
    assert not by_name(shop.events(), "rollback_started")

    # ... and the rollback by hand that the message names does it.
    result = shop.run("rollback", "--env", "staging", "--to", "1.0.0")
    assert result.code == 0, result
    assert shop.served_version() == "1.0.0"


def test_rollback_to_a_version_never_released_or_not_below_is_refused(released: Project) -> None:
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    shop.git("tag", "-a", "v1.1.0-rc.1", "-m", "a release candidate", "v1.0.0")
    before = shop.snapshot()

    typo = shop.run("rollback", "--env", "staging", "--to", "1.0.1")
    assert typo.code == 2, typo
    assert "1.0.1 was never released: expected a tag v1.0.1, found none" in typo.err
    assert "(released below 1.1.0: 1.0.0)" in typo.err
    forward = shop.run("rollback", "--env", "staging", "--to", "1.2.0")
    assert forward.code == 2, forward
    assert "staging runs 1.1.0; --to 1.2.0 is not below it" in forward.err
    assert "drillbook release --version 1.2.0" in forward.err
    same = shop.run("rollback", "--env", "staging", "--to", "1.1.0")
    assert same.code == 2, same
    assert "staging already runs 1.1.0 (by the journal)" in same.err
    assert "drillbook deploy --env staging --version 1.1.0" in same.err
    assert "drillbook release" not in same.err
    undeclared = shop.run("rollback", "--env", "staging", "--to", "9.0.0")
    assert undeclared.code == 2, undeclared
    assert "9.0.0 is not in the runbook either (declared: 1.0.0, 1.1.0, 1.2.0)" in undeclared.err
    assert "drillbook release" not in undeclared.err
    # 1.1.0's rollback checks describe 1.0.0, and would fail a good rollback to its candidate.
    candidate = shop.run("rollback", "--env", "staging", "--to", "1.1.0-rc.1")
    assert candidate.code == 2, candidate
    assert (
        "--to 1.1.0-rc.1 is a pre-release, and staging runs 1.1.0, a final release: a rollback "
        "goes back to a final release"
    ) in candidate.err
    assert "drillbook deploy --env staging --version 1.1.0-rc.1" in candidate.err
    assert "name a final release such as --to 1.0.0" in candidate.err
    bad = shop.run("rollback", "--env", "staging", "--to", "v1.0.0")
    assert bad.code == 2, bad
    assert "--to expects a semver version" in bad.err
    assert "did you mean --to 1.0.0?" in bad.err
    assert shop.served_version() == "1.1.0"
    assert shop.snapshot() == before  # nothing ran

    done = shop.run("rollback", "--env", "staging", "--to", "1.0.0")
    assert done.code == 0, done
    assert shop.served_version() == "1.0.0"

    # Below the first release there is nothing, and no --to would be accepted: the message
    # says so and how the first release is undone.
    first = shop.run("rollback", "--env", "staging")
    assert first.code == 2, first
    assert "staging runs 1.0.0, and no released version below it was found in git tags" in (
        first.err
    )
    assert "there is nothing to roll back to" in first.err
    assert (
        "1.0.0 is the first release: undo it by hand, as its rollback says (catalogue: Nothing "
        "to go back to; stop the service.)"
    ) in first.err
    assert "say where to go with --to VERSION" not in first.err
    assert shop.served_version() == "1.0.0"


def test_deploy_of_a_version_neither_declared_nor_released_is_refused(shop: Project) -> None:
    before = shop.snapshot()
    result = shop.run("deploy", "--env", "staging", "--version", "7.7.7")
    assert result.code == 2, result
    assert "7.7.7 is neither declared in the runbook" in result.err
    assert "(no tag v7.7.7)" in result.err
    assert shop.served_version() is None
    assert shop.snapshot() == before
    # A version that has a tag but is no longer declared may be deployed: it was released.
    shop.git("tag", "v0.9.0")
    assert shop.run("deploy", "--env", "staging", "--version", "0.9.0").code == 0
    assert shop.served_version() == "0.9.0"


def test_a_failing_gate_stops_before_the_deploy(shop: Project) -> None:
    result = shop.run(
        "release",
        "--version",
        "1.0.0",
        FIXTURE_LEAK="unit",
        FIXTURE_LEAK_FAIL="1",
    )

    assert result.code == 1, result
    assert "nothing was deployed" in result.out
    assert shop.served_version() is None
    assert not (shop.root / "var" / "staging" / "version").exists()
    assert shop.tags() == []


# --- plan and dry run -------------------------------------------------------------------------


def test_plan_and_dry_run_print_the_steps_and_change_nothing(released: Project) -> None:
    shop = released
    shop.commit("next")
    version_file = shop.root / "var" / "staging" / "version"
    before = shop.snapshot()
    journals = shop.journals()

    for args in (("plan", "--version", "1.1.0"), ("release", "--version", "1.1.0", "--dry-run")):
        result = shop.run(*args)
        assert result.code == 0, result
        for step in ("preflight", "lint", "unit", "verify-config", "deploy 1.1.0", "tag v1.1.0"):
            assert step in result.out
        assert "[changes] deploy 1.1.0 to staging" in result.out
        assert "[reads  ] lint" in result.out
        assert "previous version: 1.0.0" in result.out
        assert f"ok staging: {shop.url}" in result.out  # the read-only probe of staging

    assert shop.snapshot() == before
    assert version_file.read_text().strip() == "1.0.0"
    assert shop.served_version() == "1.0.0"
    assert shop.tags() == ["v1.0.0"]
    assert shop.journals() == journals


def test_plan_as_json(shop: Project) -> None:
    result = shop.run("plan", "--version", "1.0.0", "--format", "json")
    assert result.code == 0, result
    data = json.loads(result.out)
    assert [s["step"] for s in data["steps"]][:3] == ["preflight", "lint", "unit"]
    assert next(s for s in data["steps"] if s["step"] == "deploy")["changes"] is True


@pytest.mark.parametrize(
    ("args", "code", "outcome", "error", "own_key"),
    [
        # A plan that would be refused, checks that do not pass, a config rule broken: each
        # task's own document says why it exits as it does, as a refusal's document does.
        (("plan", "--version", "1.0.0"), 3, "refused", "not clean", "steps"),
        # Nothing deployed: staging refuses the connection.
        (("integration", "--version", "1.0.0"), 1, "failed", "2 of 2 checks", "checks"),
        (("verify-config",), 1, "failed", "config rule failed", "findings"),
    ],
)
def test_a_json_document_that_ends_in_a_failure_holds_the_error(
    shop: Project, args: tuple[str, ...], code: int, outcome: str, error: str, own_key: str
) -> None:
    if args[0] == "plan":
        (shop.root / "stray.txt").write_text("x\n")
    if args[0] == "verify-config":
        config = shop.root / "config" / "staging.env"
        config.write_text(config.read_text().replace("LOG_LEVEL=info", "LOG_LEVEL=loud"))

    result = shop.run(*args, "--format", "json")

    assert result.code == code, result
    data = json.loads(result.out)  # one document, nothing after it
    assert own_key in data
    assert data["task"] == args[0]
    assert data["exit"] == code
    assert data["outcome"] == outcome
    assert error in data["error"]
    assert data["retry_safe"] is True
    assert "hint" in data


# --- pushing the tag --------------------------------------------------------------------------


def test_a_failed_push_keeps_the_tag_and_a_later_push_sends_the_same_one(
    shop: Project, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"  # configured, but not there yet: the push fails
    shop.git("remote", "add", "origin", str(remote))
    result = shop.run("release", "--version", "1.0.0", "--push")

    assert result.code == 1, result
    assert "the push failed; the tag stays local" in result.out
    assert shop.tags() == ["v1.0.0"]
    tag_object = shop.git("rev-parse", "v1.0.0")
    events = shop.events()
    assert by_name(events, "push_failed")[0]["tag"] == "v1.0.0"
    assert events[-1]["outcome"] == "push_failed"

    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True, env=shop.env)
    result = shop.run("tag", "--version", "1.0.0", "--push")

    assert result.code == 0, result
    assert "already on" in result.out
    assert "pushed v1.0.0" in result.out
    assert shop.git("rev-parse", "v1.0.0") == tag_object
    remote_tags = shop.git("ls-remote", "--tags", "origin").splitlines()
    assert remote_tags[0].split("\t") == [tag_object, "refs/tags/v1.0.0"]


def test_push_without_a_remote_is_refused_before_the_first_step(shop: Project) -> None:
    before = shop.snapshot()
    result = shop.run("release", "--version", "1.0.0", "--push")
    assert result.code == 3, result
    assert "--push needs a git remote named origin, and the repository has none" in result.err
    assert shop.tags() == []
    assert shop.served_version() is None
    assert shop.snapshot() == before
    tag = shop.run("tag", "--version", "1.0.0", "--push")
    assert tag.code == 3, tag
    assert shop.tags() == []


# --- verify-config ----------------------------------------------------------------------------


def test_verify_config_pass_fail_drift_missing_secret_and_invalid(shop: Project) -> None:
    config = shop.root / "config" / "staging.env"
    result = shop.run("verify-config", "--env", "staging")
    assert result.code == 0, result
    assert "0 fail" in result.out

    config.write_text("LOG_LEVEL=loud\nSECRET_KEY=s3cr3t/p@ss+w0rd=Zq\n")
    result = shop.run("verify-config", "--env", "staging")
    assert result.code == 1, result
    assert "LOG_LEVEL" in result.out
    assert "loud" in result.out

    (shop.root / "config" / "production.env").write_text(
        "LOG_LEVEL=info\nSECRET_KEY=x-prod-key\nFEATURE_FLAGS=on\n"
    )
    config.write_text("LOG_LEVEL=info\nSECRET_KEY=s3cr3t/p@ss+w0rd=Zq\n")
    result = shop.run("verify-config", "--env", "staging")
    assert result.code == 1, result
    assert "FEATURE_FLAGS" in result.out
    assert "s3cr3t" not in result.text

    (shop.root / "config" / "production.env").write_text("LOG_LEVEL=info\nSECRET_KEY=x-prod\n")
    config.write_text("LOG_LEVEL=info\nSECRET_KEY=\n")
    result = shop.run("verify-config", "--env", "staging")
    assert result.code == 1, result
    assert "SECRET_KEY" in result.out

    config.write_text("LOG_LEVEL=info\nLOG_LEVEL=debug\n")
    result = shop.run("verify-config", "--env", "staging")
    assert result.code == 2, result
    assert "config/staging.env:2:" in result.text


def test_a_release_stopped_by_a_config_rule_says_which_rule_expected_and_got(
    shop: Project,
) -> None:
    config = shop.root / "config" / "staging.env"
    config.write_text("LOG_LEVEL=loud\nSECRET_KEY=s3cr3t/p@ss+w0rd=Zq\n")
    shop.commit("a log level no application knows")

    result = shop.run("release", "--version", "1.0.0")
    assert result.code == 1, result
    digest = result.out[result.out.index("incident digest") :]
    assert "stopped at verify-config: 1 config rule failed: LOG_LEVEL (one_of)" in digest
    assert "LOG_LEVEL: expected one of debug, info, warning, error, got 'loud'" in digest
    assert "config/staging.env:1" in digest
    assert shop.served_version() is None
    [finished] = [
        e for e in shop.events() if e["event"] == "step_finished" and e["step"] == "verify-config"
    ]
    assert finished["detail"] == "1 config rule failed: LOG_LEVEL (one_of)"

    result = shop.run("release", "--version", "1.0.0", "--format", "json")
    assert result.code == 1, result
    step = json.loads(result.out)["steps"][-1]
    assert step["step"] == "verify-config"
    assert step["findings"] == [
        "LOG_LEVEL: expected one of debug, info, warning, error, got 'loud' (config/staging.env:1)"
    ]
    assert "s3cr3t" not in result.text


def test_a_release_stopped_by_many_config_failures_keeps_their_count_and_the_first(
    shop: Project,
) -> None:
    # Every one of them went into one journal line: megabytes for a file of many keys.
    production = shop.root / "config" / "production.env"
    long_key = "K" * 3000
    keys = [long_key, *(f"KEY_{i:06d}" for i in range(100_000))]
    production.write_text(production.read_text() + "".join(f"{k}=x\n" for k in keys))
    shop.commit("production gained many keys")

    result = shop.run("release", "--version", "1.0.0", "--format", "json")

    assert result.code == 1, result
    [journal] = shop.journals()
    line = next(
        x
        for x in journal.read_text().splitlines()
        if '"step":"verify-config"' in x and '"step_finished"' in x
    )
    assert len(line) < 100_000
    finished = json.loads(line)
    assert finished["findings_total"] == 100_001
    assert len(finished["findings"]) == 50
    assert finished["findings"][0].startswith(f"{'K' * 1000}... (")
    assert finished["findings"][1].startswith("KEY_000000: expected the key, as production has it")
    assert finished["findings_left_out"] == (
        "99951 more, not kept here; `drillbook verify-config --env staging` lists every one"
    )
    assert finished["detail"].startswith(f"100001 config rules failed: {'K' * 80}... (drift), ")
    assert finished["detail"].endswith(" and 99996 more")
    step = json.loads(result.out)["steps"][-1]
    assert step["findings_total"] == 100_001
    assert len(step["findings"]) == 50
    assert "... and 99951 more, not kept here" in result.err
    assert result.err.count("KEY_") < 100
    assert SECRET_KEY not in journal.read_text()


def test_the_journal_stays_one_event_a_line_whatever_a_command_prints(shop: Project) -> None:
    result = shop.run("release", "--version", "1.0.0", FIXTURE_ODD_OUTPUT="lint")

    assert result.code == 0, result
    [journal] = shop.journals()
    # splitlines() also ends lines at U+2028, U+2029 and U+0085: none may be left raw.
    events = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    lint = next(e for e in events if e["event"] == "step_finished" and e["step"] == "lint")
    assert "a\u2028b\u2029c\x85d" in lint["output_tail"]
    assert "\ufffd" in lint["output_tail"]


def test_a_failed_deploy_says_what_ran_before_it(released: Project) -> None:
    shop = released
    result = shop.run("deploy", "--version", "1.1.0", FIXTURE_FAIL_DEPLOY="1.1.0")
    assert result.code != 0, result

    events = shop.events(shop.journals()[-1].stem)
    assert events[0]["found_version"] == "1.0.0"
    row = json.loads(shop.run("history", "--format", "json").out)[0]
    assert (row["kind"], row["previous"]) == ("deploy", "1.0.0")
    assert row["undo"] == "drillbook deploy --env staging --version 1.0.0"
    # The line that ends the run, read alone, says what the console said, and the undo.
    last = events[-1]
    assert (last["event"], last["exit"]) == ("run_finished", result.code)
    assert last["summary"] == "deploy of 1.1.0 to staging failed: exited 1"
    assert last["summary"] in result.err and last["hint"] in result.err.replace("\n    ", " ")
    assert last["undo"] == row["undo"]
    # ... and typing it puts 1.0.0 back.
    assert shop.run("deploy", "--version", "1.0.0").code == 0
    assert shop.served_version() == "1.0.0"


def test_a_run_whose_command_line_holds_a_byte_that_is_not_utf8_runs_and_journals_it(
    shop: Project,
) -> None:
    # The lock and the journal could not be written as UTF-8: an internal error, exit 2.
    # An invoke config file named on a Latin-1 disk (invoke skips one it does not find).
    config = os.fsdecode(str(shop.home).encode() + b"/caf\xe9.yaml")
    result = shop.run("-f", config, "deploy", "--version", "1.0.0")
    assert result.code == 0, result
    started = shop.events()[0]
    assert started["event"] == "run_started"
    recorded = f"{shop.home}/caf\\xe9.yaml"
    assert started["argv"] == ["drillbook", "-f", recorded, "deploy", "--version", "1.0.0"]


@pytest.mark.parametrize(
    ("env", "recorded"),
    [
        ({"LOGNAME": os.fsdecode(b"b\xe9b")}, "b\\xe9b"),
        ({"LOGNAME": "josé", "LC_ALL": "C", "PYTHONUTF8": "0"}, "josé"),
    ],
)
def test_a_login_name_the_locale_cannot_decode_is_journaled_not_an_internal_error(
    shop: Project, env: dict[str, str], recorded: str
) -> None:
    # The journal's `user` was LOGNAME as decoded; a Latin-1 name, or `josé` under a locale
    # that is not UTF-8, could not be written as UTF-8: every run stopped with exit 2.
    result = shop.run("deploy", "--version", "1.0.0", **env)
    assert result.code == 0, result
    assert shop.events()[0]["user"] == recorded
    assert shop.served_version() == "1.0.0"


#: Sets this UTS namespace's host name to argv[1], then runs argv[2:].
_ON_HOST = (
    "import os, socket, sys; socket.sethostname(os.fsencode(sys.argv[1])); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def test_a_host_name_the_locale_cannot_decode_is_recorded_and_known_as_this_host(
    shop: Project,
) -> None:
    # The lock and the journal record the host name as Python decoded it; `café` under a
    # locale that is not UTF-8 could not be written, and every run stopped with exit 2.
    unshare = shutil.which("unshare")
    ns = [unshare, "--user", "--map-root-user", "--uts"] if unshare else []
    if not ns or subprocess.run([*ns, "true"], capture_output=True, check=False).returncode:
        pytest.skip("needs unshare with user and UTS namespaces")
    killer = shop.home / "killed_drillbook.py"
    killer.write_text(KILLER)

    def on_cafe(program: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ns, sys.executable, "-c", _ON_HOST, "café", program, *args],
            cwd=shop.root,
            env={**shop.env, "LC_ALL": "C", "PYTHONUTF8": "0", **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            start_new_session=True,  # the killer kills its process group
        )

    # SIGKILLed as it starts: its lock stays, naming a process gone from this host.
    killed = on_cafe(
        sys.executable,
        str(killer),
        "deploy",
        "--version",
        "1.0.0",
        FIXTURE_KILL_AFTER="run_started",
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    first = shop.events()[0]
    assert first["host"] == "café"

    # Known as this host's own, its lock is taken over, not held by a live run elsewhere
    # (exit 75).
    abandoned = on_cafe(str(DRILLBOOK), "abandon", first["run"])
    assert abandoned.returncode == 0, abandoned.stdout + abandoned.stderr
    done = on_cafe(str(DRILLBOOK), "deploy", "--version", "1.0.0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert shop.served_version() == "1.0.0"


def test_invoke_dry_is_refused_by_a_task_that_would_run_for_real(shop: Project) -> None:
    # invoke's --dry only makes its own c.run echo; `invoke --dry deploy` deployed.
    (shop.root / "tasks.py").write_text("from drillbook.tasks import namespace as ns\n")
    proc = subprocess.run(
        [str(DRILLBOOK.parent / "invoke"), "--dry", "deploy", "--version", "1.0.0"],
        cwd=shop.root,
        env=shop.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "invoke's --dry (run.dry) does not reach drillbook's tasks" in proc.stderr
    assert "`invoke release --dry-run`" in proc.stderr
    assert shop.journals() == []
    assert shop.served_version() is None


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_invoke_release_to_a_stdout_that_lacks_a_character_shows_a_stand_in(
    shop: Project, encoding: str
) -> None:
    # The console script lets such a stdout show `?`; under the project's own invoke the first
    # `│` before a gate's output stopped the release: "internal error: UnicodeEncodeError".
    (shop.root / "tasks.py").write_text(
        "from drillbook.tasks import project_namespace\n\nns = project_namespace(__name__)\n"
    )
    shop.commit("tasks")
    proc = subprocess.run(
        [str(DRILLBOOK.parent / "invoke"), "release", "--version", "1.0.0"],
        cwd=shop.root,
        env={**shop.env, "PYTHONIOENCODING": encoding},
        capture_output=True,
        text=True,
        encoding=encoding,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "      lint ? lint: ok\n" in proc.stdout
    assert "release 1.0.0 of shop is done on staging" in proc.stdout
    assert shop.tags() == ["v1.0.0"]


def test_placeholders_are_filled_in_a_commands_environment_variables(shop: Project) -> None:
    # As in a command check's `env:`: a value that names {env} or {url} gets it, not the text.
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text()
    text = text.replace(
        "  lint: [python, gate.py, lint]\n",
        "  lint:\n"
        "    run: [python, -c, \"import os; print(os.environ['GATE_SEES'], os.environ['AT'])\"]\n"
        '    env: {GATE_SEES: "{service} on {env}"}\n',
    ).replace(
        "    config: config/staging.env\n",
        '    config: config/staging.env\n    deploy_env: {AT: "{url}"}\n',
        1,
    )
    runbook.write_text(text)
    shop.commit("a gate that reads its environment")

    result = shop.run("lint")

    assert result.code == 0, result
    finished = next(e for e in shop.events() if e["event"] == "step_finished")
    assert finished["output_tail"] == f"shop on staging {shop.url}"


def test_plan_names_the_expected_checks_that_may_change_staging(shop: Project) -> None:
    # Checks are marked as reading; a POST or a command among them may not be, and a plan that
    # says what would change must say so.
    runbook = shop.root / "runbooks" / "shop.yaml"
    feature = "            - get: /feature\n              expect: {status: 200}\n"
    writing = (
        "            - post: /orders\n              expect: {status: 201}\n"
        "            - run: [python, smoke.py, --create-order]\n"
    )
    runbook.write_text(runbook.read_text().replace(feature, writing + feature, 1))
    shop.commit("checks that write")

    writes = shop.run("plan", "--version", "1.1.0")
    reads = shop.run("plan", "--version", "1.0.0")

    assert writes.code == 0, writes
    assert (
        "note: expected checks that may change staging (a POST or a command): "
        "POST /orders, run python smoke.py --create-order"
    ) in writes.out
    assert reads.code == 0, reads
    assert "may change staging" not in reads.out
