"""`deploy`, `tag` and `resume` with `--format json`: one document on stdout, progress on stderr.

A pipeline reads these as it reads a release's summary: the same fields when the run ends,
and a refusal's or a failure's document (error, hint, exit, retry_safe) when it does not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _project import Project, Run

#: The fields of every run's summary, a release's included.
SUMMARY = {
    "run",
    "action",
    "service",
    "env",
    "version",
    "outcome",
    "exit",
    "headline",
    "duration_ms",
    "artifacts",
    "journal",
    "steps",
}
#: The fields of the document of a run that was refused or failed.
ERROR = {"task", "outcome", "exit", "error", "hint", "retry_safe", "run", "journal"}


def document(result: Run) -> dict[str, Any]:
    """stdout as exactly one JSON document (a second one, or any text, fails here)."""
    doc = json.loads(result.out)
    assert isinstance(doc, dict), result
    assert doc["exit"] == result.code, result
    return doc


def test_a_deploy_as_json_is_a_release_summary_with_its_progress_on_stderr(
    released: Project,
) -> None:
    result = released.run("deploy", "--env", "staging", "--version", "1.0.0", "--format", "json")

    assert result.code == 0, result
    doc = document(result)
    assert set(doc) == SUMMARY
    assert (doc["action"], doc["service"], doc["env"], doc["version"]) == (
        "deploy",
        "shop",
        "staging",
        "1.0.0",
    )
    assert (doc["outcome"], doc["headline"]) == ("ok", "deployed 1.0.0 to staging")
    assert [(s["step"], s["outcome"]) for s in doc["steps"]] == [("deploy", "ok")]
    assert doc["journal"] == f".drillbook/journal/{doc['run']}.jsonl"
    assert (released.root / doc["journal"]).is_file()
    assert "deploy 1.0.0 to staging" in result.err


def test_a_failed_deploy_as_json_is_its_summary_with_the_error(released: Project) -> None:
    result = released.run(
        "deploy",
        "--env",
        "staging",
        "--version",
        "1.0.0",
        "--format",
        "json",
        FIXTURE_FAIL_DEPLOY="1.0.0",
    )

    assert result.code == 1, result
    doc = document(result)
    assert set(doc) == SUMMARY | ERROR
    assert (doc["task"], doc["action"], doc["outcome"]) == ("deploy", "deploy", "failed")
    assert doc["error"] == "deploy of 1.0.0 to staging failed: exited 1"
    assert "`drillbook deploy --env staging --version 1.0.0` deploys 1.0.0 again" in doc["hint"]
    assert [(s["step"], s["outcome"]) for s in doc["steps"]] == [("deploy", "failed")]
    assert released.events(doc["run"])[-1]["exit"] == 1
    assert "the artifact is missing" in result.err


def test_a_deploy_refused_as_json_is_the_refusal_alone(released: Project) -> None:
    result = released.run("deploy", "--env", "production", "--version", "1.0.0", "--format", "json")

    assert result.code == 2, result
    doc = document(result)
    assert set(doc) == ERROR
    assert (doc["task"], doc["outcome"], doc["run"]) == ("deploy", "invalid", None)
    assert (
        doc["error"]
        == "deploying to production needs confirmation, and there is no terminal to ask"
    )
    assert doc["hint"] == "pass --yes to confirm"


def test_a_tag_as_json_is_a_release_summary_naming_the_tag(shop: Project) -> None:
    result = shop.run("tag", "--version", "1.0.0", "--format", "json")

    assert result.code == 0, result
    doc = document(result)
    assert set(doc) == SUMMARY
    assert (doc["action"], doc["version"], doc["outcome"]) == ("tag", "1.0.0", "ok")
    assert doc["artifacts"] == {"tag": "v1.0.0"}
    head = shop.git("rev-parse", "HEAD")
    assert doc["headline"] == f"v1.0.0 created on {head[:9]}"
    assert shop.tags() == ["v1.0.0"]
    assert f"created v1.0.0 on {head[:9]}" in result.err


def test_a_tag_whose_push_fails_as_json_says_the_tag_stays_local(
    shop: Project, tmp_path: Path
) -> None:
    shop.git("remote", "add", "origin", str(tmp_path / "gone.git"))

    result = shop.run("tag", "--version", "1.0.0", "--push", "--format", "json")

    assert result.code == 1, result
    doc = document(result)
    assert set(doc) == SUMMARY | ERROR
    assert (doc["task"], doc["outcome"], doc["artifacts"]) == (
        "tag",
        "push_failed",
        {"tag": "v1.0.0"},
    )
    assert doc["error"].startswith("push of v1.0.0 failed; the tag stays local")
    assert "(retry safe)" in doc["hint"]
    assert shop.tags() == ["v1.0.0"]


def test_a_tag_refused_as_json_is_the_refusal_alone(released: Project) -> None:
    released.commit("after the release")

    result = released.run("tag", "--version", "1.0.0", "--format", "json")

    assert result.code == 3, result
    doc = document(result)
    assert set(doc) == ERROR
    assert (doc["task"], doc["outcome"], doc["run"]) == ("tag", "refused", None)
    assert "v1.0.0" in doc["error"]
    assert doc["hint"]


def test_a_resume_as_json_is_the_summary_of_the_release_it_finishes(released: Project) -> None:
    shop = released
    before = set(shop.journals())
    shop.run_killed("step_finished:deploy", "release", "--version", "1.1.0")
    [path] = set(shop.journals()) - before
    stopped = path.stem

    result = shop.run("resume", stopped, "--format", "json")

    assert result.code == 0, result
    doc = document(result)
    assert set(doc) == SUMMARY
    assert (doc["action"], doc["version"], doc["outcome"]) == ("release", "1.1.0", "ok")
    assert doc["run"] != stopped
    assert doc["artifacts"]["tag"] == "v1.1.0"
    outcomes = {s["step"]: s["outcome"] for s in doc["steps"]}
    assert (outcomes["deploy"], outcomes["tag"]) == ("done", "ok"), outcomes
    assert f"resuming {stopped}" in result.err


def test_a_resume_refused_as_json_is_the_refusal_alone(released: Project) -> None:
    [finished] = [p.stem for p in released.journals()]

    result = released.run("resume", finished, "--format", "json")

    assert result.code == 2, result
    doc = document(result)
    assert set(doc) == ERROR
    assert (doc["task"], doc["outcome"]) == ("resume", "invalid")
    assert doc["error"].startswith(f"run {finished} ")
    assert doc["error"].endswith("only an interrupted or unfinished run can be resumed")


def test_a_resume_as_json_without_a_run_says_to_name_it(released: Project) -> None:
    result = released.run("resume", "--format", "json")

    assert result.code == 2, result
    doc = document(result)
    assert doc["error"] == "resume --format json needs RUN: the run to continue"
    assert doc["hint"].startswith("`drillbook resume` lists the runs left open")


def test_a_release_that_fails_after_its_deploy_says_error_hint_and_retry_safe(
    released: Project,
) -> None:
    # Exit 4: rolled back and proven; the same release may run again once fixed.
    back = released.run("release", "--version", "1.1.0", "--format", "json", FIXTURE_BROKEN="1.1.0")
    assert back.code == 4, back
    doc = document(back)
    assert set(doc) == SUMMARY | {"error", "hint", "retry_safe"}
    assert doc["outcome"] == "rolled_back"
    assert doc["error"] == doc["headline"]
    assert doc["hint"].startswith("staging was rolled back and its rollback checks pass")
    assert doc["retry_safe"] is True

    # Exit 5: the rollback failed too; a person must act, and running it again is not safe.
    failed = released.run(
        "release",
        "--version",
        "1.1.0",
        "--format",
        "json",
        FIXTURE_BROKEN="1.1.0",
        FIXTURE_FAIL_DEPLOY="1.0.0",
    )
    assert failed.code == 5, failed
    doc = document(failed)
    assert doc["outcome"] == "rollback_failed"
    assert doc["hint"].startswith("a person must act: start with the failed rollback step in")
    assert doc["retry_safe"] is False
