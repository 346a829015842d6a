"""`drillbook rehearse` end to end: real services on loopback, real git, the real console script.

Most tests use the stdlib fixture project of `_project.py` (the `shop` and `released` fixtures
stop its service and fail when a process is left behind); one rehearses 1.1.0 of the real demo
service (FastAPI under uvicorn), as `drillbook demo` does.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _project import DRILLBOOK, Project, free_port, hermetic_env

REPO = Path(__file__).resolve().parents[2]

# A release whose rollback step fails: the migration cannot be undone.
BAD_ROLLBACK = """\
  - version: 1.3.0
    changes:
      - id: ledger
        title: Move orders to the ledger table
        owner: dana
        expected:
          summary: /feature answers 200 on the ledger.
          checks:
            - healthy
            - get: /feature
              expect: {status: 200}
              timeout: 1s
        rollback:
          summary: Undo the ledger migration, then deploy the previous version.
          retry_safe: false
          steps:
            - name: undo the ledger migration
              run: [python, -c, "print('ledger down: lock timeout'); raise SystemExit(3)"]
          checks:
            - healthy
            - get: /version
              expect: {json: {version: 1.0.0}}
"""


def by_name(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


def finished_steps(events: list[dict[str, Any]]) -> list[str]:
    return [e["step"] for e in by_name(events, "step_finished")]


def deployed(events: list[dict[str, Any]]) -> list[str]:
    return [e["version"] for e in by_name(events, "deployed")]


def the_rehearsal(events: list[dict[str, Any]]) -> dict[str, Any]:
    [event] = by_name(events, "rehearsal_finished")
    return event


REHEARSAL_FIELDS = {
    "outcome",
    "version",
    "previous",
    "baseline_ms",
    "deploy_ms",
    "verify_ms",
    "restore_ms",
    "total_ms",
    "report_md",
    "report_json",
    "runbook_sha256",
    "failed_checks",
}


def add_release(shop: Project, text: str) -> None:
    runbook = shop.root / "runbooks" / "shop.yaml"
    runbook.write_text(runbook.read_text() + text)
    shop.commit("another release")


# --- a good version ---------------------------------------------------------------------------


def test_a_good_version_is_rehearsed_timed_reported_and_staging_ends_where_it_was(
    released: Project,
) -> None:
    shop = released
    assert shop.run("deploy", "--version", "1.1.0").code == 0
    result = shop.run("rehearse", "--version", "1.1.0", "--format", "json")

    assert result.code == 0, result
    assert shop.served_version() == "1.1.0"  # forward again: where it was before
    summary = json.loads(result.out)  # stdout holds only the JSON; progress went to stderr
    assert summary["outcome"] == "ok"
    assert summary["exit"] == 0
    assert (summary["version"], summary["previous"]) == ("1.1.0", "1.0.0")
    assert (summary["found_version"], summary["left_on"]) == ("1.1.0", "1.1.0")
    timings = summary["timings"]
    for name in ("baseline_ms", "deploy_ms", "verify_ms", "restore_ms", "redeploy_ms"):
        assert isinstance(timings[name], int), name
        assert 0 <= timings[name] <= timings["total_ms"]
    assert "[1/8] baseline: deploy 1.0.0 to staging" in result.err
    assert "[8/8] return: expected checks of 1.1.0" in result.err

    events = shop.events()
    assert events[0]["action"] == "rehearse"
    assert events[0]["found_version"] == "1.1.0"
    assert finished_steps(events) == [
        "baseline-deploy",
        "baseline-checks",
        "deploy",
        "integration",
        "rollback-deploy",
        "rollback-checks",
        "return-deploy",
        "return-checks",
    ]
    assert deployed(events) == ["1.0.0", "1.1.0", "1.0.0", "1.1.0"]
    event = the_rehearsal(events)
    assert event.keys() >= REHEARSAL_FIELDS
    assert event["outcome"] == "ok"
    assert event["failed_checks"] == []
    assert event["restore_ms"] == timings["restore_ms"]
    assert event["redeploy_ms"] == timings["redeploy_ms"]
    assert events[-1]["event"] == "run_finished"
    assert (events[-1]["outcome"], events[-1]["exit"]) == ("ok", 0)
    # Read alone, the last line says what the rehearsal proved and where it left staging.
    assert events[-1]["summary"].startswith("rehearsal of 1.1.0 passed: ")
    assert events[-1]["summary"] in result.err
    assert events[-1]["undo"] == "nothing to undo (staging left on 1.1.0, as found)"
    # The restore is timed from the start of the rollback until its checks pass.
    rollback_ms = sum(
        e["duration_ms"]
        for e in by_name(events, "step_finished")
        if e["step"] in ("rollback-deploy", "rollback-checks")
    )
    assert rollback_ms <= event["restore_ms"] <= rollback_ms + 500

    md = shop.root / event["report_md"]
    js = shop.root / event["report_json"]
    run = events[0]["run"]
    assert md.name == f"shop-1.1.0-rehearsal-{run}.md"
    assert json.loads(js.read_text()) == summary
    report = md.read_text()
    assert "# Rollback rehearsal: shop 1.1.0 on staging" in report
    # Each fact on a line of its own: one list item a line.
    assert "\n- **Rolled back to:** 1.0.0\n" in report
    assert "\n- **staging runs now:** 1.1.0 (before the rehearsal: 1.1.0)\n- **Run:**" in report
    assert "from the start of the rollback until its checks pass" in report
    assert f"{event['restore_ms'] / 1000:.2f} s" in report
    assert "drillbook rollback --env staging --to 1.0.0" in report
    assert "| feature: Turn the feature on | bob |" in report


def test_staging_on_the_previous_version_stays_there_and_templates_override(
    released: Project,
) -> None:
    shop = released
    override = shop.root / "templates" / "rehearsal-report.md.j2"
    override.parent.mkdir()
    override.write_text("custom report: {{ version }} back to {{ previous }} ({{ outcome }})\n")

    result = shop.run("rehearse", "--version", "1.1.0")

    assert result.code == 0, result
    assert shop.served_version() == "1.0.0"
    events = shop.events()
    assert "return-deploy" not in finished_steps(events)
    assert deployed(events) == ["1.0.0", "1.1.0", "1.0.0"]
    event = the_rehearsal(events)
    assert event["redeploy_ms"] is None
    assert "staging stays on 1.0.0, as it was" in result.out
    for line in ("timings:", "baseline (1.0.0 deployed and proven)", "deploy 1.1.0", "total"):
        assert line in result.out
    assert f"report: {event['report_md']}" in result.out
    assert f"report (json): {event['report_json']}" in result.out
    assert (
        shop.root / event["report_md"]
    ).read_text() == "custom report: 1.1.0 back to 1.0.0 (ok)\n"
    # A rehearsal makes no tag and needs no clean tree (templates/ is not committed).
    assert shop.tags() == ["v1.0.0"]


# --- a broken version, a broken rollback --------------------------------------------------------


def test_a_broken_version_is_rolled_back_proven_and_exits_4(released: Project) -> None:
    shop = released
    result = shop.run("rehearse", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0")

    assert result.code == 4, result
    assert shop.served_version() == "1.0.0"
    assert "incident digest" in result.out
    assert "1.1.0 failed at integration" in result.out
    assert "staging stays on 1.0.0" in result.out
    assert "owner: bob (feature)" in result.out
    events = shop.events()
    event = the_rehearsal(events)
    assert event["outcome"] == "failed_checks_restored"
    assert event["failed_checks"] == ["GET /feature"]
    assert isinstance(event["restore_ms"], int)
    assert event["verify_ms"] is not None
    assert deployed(events) == ["1.0.0", "1.1.0", "1.0.0"]
    assert events[-1]["exit"] == 4
    report = json.loads((shop.root / event["report_json"]).read_text())
    assert report["failed_step"] == "integration"
    assert report["left_on"] == "1.0.0"


def test_a_rehearsal_cut_short_in_its_rollback_says_where_staging_may_be(
    released: Project,
) -> None:
    shop = released
    runbook = shop.root / "runbooks" / "shop.yaml"
    runbook.write_text(
        runbook.read_text().replace(
            "          summary: Deploy 1.0.0 again; the feature goes away.\n"
            "          retry_safe: true\n",
            "          summary: Deploy 1.0.0 again; the feature goes away.\n"
            "          retry_safe: true\n"
            "          steps:\n"
            "            - [python, -c, \"import time; print('undoing', flush=True); "
            'time.sleep(30)"]\n',
            1,
        )
    )
    shop.commit("a slow rollback step")
    assert shop.run("release", "--version", "1.1.0").code == 0
    proc = shop.start("rehearse", "--version", "1.1.0")
    shop.read_until(proc, "undoing")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)

    assert proc.returncode == 143, out + err
    assert "staging may run 1.0.0 or 1.1.0, or one half-deployed" in err
    assert "`drillbook rehearse --version 1.1.0` runs the rehearsal again from its baseline" in err
    assert "`drillbook deploy --env staging --version 1.1.0` puts back 1.1.0" in err
    assert shop.events()[-1]["outcome"] == "interrupted"
    assert not shop.strays()
    again = shop.run("deploy", "--env", "staging", "--version", "1.1.0")
    assert again.code == 0, again
    assert shop.served_version() == "1.1.0"


def test_a_rehearsal_cut_short_on_its_way_back_says_the_rollback_was_proven(
    released: Project,
) -> None:
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    assert shop.run("release", "--version", "1.2.0").code == 0
    proc = shop.start("rehearse", "--version", "1.1.0", FIXTURE_HANG="1.2.0")
    shop.wait_for_event(
        lambda e: e.get("event") == "command_started" and e.get("step") == "return-deploy",
        proc=proc,
    )
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)

    assert proc.returncode == 143, out + err
    # 1.1.0 no longer runs: staging ran the proven 1.0.0 and was on its way to 1.2.0.
    assert "the rollback to 1.0.0 was proven; staging was being put back on 1.2.0" in err
    assert "so it may run 1.0.0 or 1.2.0, or one half-deployed" in err
    assert "`drillbook deploy --env staging --version 1.2.0` puts back 1.2.0" in err
    assert "1.1.0, or one half-deployed" not in err
    assert shop.events()[-1]["outcome"] == "interrupted"
    assert not shop.strays()

    # A baseline that failed goes back too, but nothing was proven then.
    assert shop.run("deploy", "--version", "1.2.0").code == 0
    earlier = {p.stem for p in shop.journals()}
    proc = shop.start(
        "rehearse", "--version", "1.1.0", FIXTURE_FAIL_DEPLOY="1.0.0", FIXTURE_HANG="1.2.0"
    )
    shop.wait_for_event(
        lambda e: (
            e.get("event") == "command_started"
            and e.get("step") == "return-deploy"
            and e.get("run") not in earlier
        ),
        proc=proc,
    )
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, out + err
    assert "was proven" not in err


def test_a_rollback_that_fails_after_a_good_version_exits_5_on_the_working_version(
    released: Project,
) -> None:
    shop = released
    add_release(shop, BAD_ROLLBACK)
    result = shop.run("rehearse", "--version", "1.3.0")

    assert result.code == 5, result
    # 1.3.0 passed its checks minutes ago: staging is left on it rather than broken.
    assert shop.served_version() == "1.3.0"
    assert "the rollback of 1.3.0 to 1.0.0 FAILED at rollback-step:ledger:1" in result.out
    assert "a person must act:" in result.out
    assert "fix the rollback step that failed, rollback-step:ledger:1" in result.out
    assert "staging runs: 1.3.0" in result.out
    events = shop.events()
    assert the_rehearsal(events)["outcome"] == "restore_failed"
    assert the_rehearsal(events)["restore_ms"] is None
    assert finished_steps(events)[-2:] == ["fallback-deploy", "fallback-checks"]


def test_a_broken_version_whose_rollback_fails_says_exactly_what_to_do(
    released: Project,
) -> None:
    shop = released
    add_release(shop, BAD_ROLLBACK)
    result = shop.run("rehearse", "--version", "1.3.0", FIXTURE_BROKEN="1.3.0")

    assert result.code == 5, result
    assert "AND the rollback to 1.0.0 failed at rollback-step:ledger:1" in result.out
    assert "ledger down: lock timeout" in result.out
    assert (
        "put 1.0.0 back on staging by hand: `python deploy.py --env staging --version 1.0.0 "
        f"--url {shop.url}`"
    ) in result.out
    assert "prove it: healthy: GET /health answers 200" in result.out
    assert "page #shop-oncall" in result.out
    assert "staging runs: UNKNOWN" in result.out
    event = the_rehearsal(shop.events())
    report = json.loads((shop.root / event["report_json"]).read_text())
    assert report["outcome"] == "restore_failed"
    assert report["left_on"] is None
    assert any("by hand" in line for line in report["what_to_do"])
    # The command to roll back for real is the one that just failed: the report says so.
    text = (shop.root / event["report_md"]).read_text()
    for_real = text.split("## Roll back for real", 1)[1].split("## Changes", 1)[0]
    assert "**This rollback FAILED in this rehearsal** (see above)" in for_real


# A release whose rollback check passes on its first run (the baseline) and fails on every
# later one: the rollback's redeploy works, and nothing proves it did.
SECOND_LOOK_FAILS = BAD_ROLLBACK.replace(
    "          steps:\n"
    "            - name: undo the ledger migration\n"
    "              run: [python, -c, \"print('ledger down: lock timeout'); raise SystemExit(3)\"]\n"
    "          checks:\n",
    "          checks:\n"
    "            - name: ledger empty\n"
    "              run: [python, -c, \"import os; os.makedirs('var', exist_ok=True); "
    "seen = os.path.exists('var/looked'); open('var/looked', 'w').close(); "
    'raise SystemExit(3 if seen else 0)"]\n',
)


def test_a_broken_version_whose_rollback_checks_fail_says_the_previous_version_runs_unproven(
    released: Project,
) -> None:
    shop = released
    assert SECOND_LOOK_FAILS != BAD_ROLLBACK
    add_release(shop, SECOND_LOOK_FAILS)
    result = shop.run("rehearse", "--version", "1.3.0", FIXTURE_BROKEN="1.3.0")

    assert result.code == 5, result
    # The redeploy of 1.0.0 finished: the broken 1.3.0 is gone, and the message says so.
    assert shop.served_version() == "1.0.0"
    assert (
        "1.3.0 failed at integration AND the rollback to 1.0.0 failed at rollback-checks: its "
        "redeploy finished, so staging runs 1.0.0, and nothing proves it works; a person must "
        "act now"
    ) in result.out
    assert "may run the broken 1.3.0" not in result.out
    assert "staging runs: 1.0.0" in result.out
    event = the_rehearsal(shop.events())
    assert (event["outcome"], event["left_on"], event["exit"]) == ("restore_failed", "1.0.0", 5)
    report = json.loads((shop.root / event["report_json"]).read_text())
    assert report["left_on"] == "1.0.0"
    assert report["failed_checks"] == ["GET /feature", "ledger empty"]


def test_a_rollback_without_checks_is_not_said_to_pass_them(released: Project) -> None:
    shop = released
    add_release(
        shop,
        "  - version: 1.3.0\n"
        "    changes:\n"
        "      - id: banner\n"
        "        title: A banner\n"
        "        owner: erin\n"
        "        expected: {checks: [healthy]}\n"
        "        rollback: {summary: Deploy the previous version again.}\n",
    )
    result = shop.run("rehearse", "--version", "1.3.0")

    assert result.code == 0, result
    assert "rehearsal of 1.3.0 passed: the rollback to 1.0.0 took " in result.out
    assert "but no rollback checks describe 1.0.0, so nothing proved it worked" in result.out
    assert "and its checks pass" not in result.out


def test_a_baseline_that_cannot_deploy_puts_back_what_ran_and_exits_4(released: Project) -> None:
    shop = released
    assert shop.run("deploy", "--version", "1.1.0").code == 0
    result = shop.run("rehearse", "--version", "1.1.0", FIXTURE_FAIL_DEPLOY="1.0.0")

    assert result.code == 4, result
    assert "stopped at the baseline: the deploy of 1.0.0 failed" in result.out
    assert shop.served_version() == "1.1.0"
    events = shop.events()
    assert the_rehearsal(events)["outcome"] == "baseline_failed"
    report = (shop.root / the_rehearsal(events)["report_md"]).read_text()
    assert "**This rollback is not proven:** the rehearsal stopped at its baseline" in report
    assert finished_steps(events) == ["baseline-deploy", "return-deploy", "return-checks"]


def test_a_return_deploy_that_fails_puts_back_the_previous_version_proven_and_exits_4(
    released: Project,
) -> None:
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    assert shop.run("release", "--version", "1.2.0").code == 0

    result = shop.run("rehearse", "--version", "1.1.0", FIXTURE_FAIL_DEPLOY="1.2.0")

    assert result.code == 4, result
    assert "1.2.0 failed at return-deploy when deployed again" in result.out
    assert "staging stays on 1.0.0" in result.out
    assert "staging runs: 1.0.0" in result.out
    assert shop.served_version() == "1.0.0"
    events = shop.events()
    # 1.0.0 is proven by the rollback checks of 1.1.0, which describe it; those of 1.2.0
    # expect 1.1.0 and would call a good 1.0.0 a failed rollback.
    versions = [
        e["expected"]
        for e in by_name(events, "check_finished")
        if e["step"] == "rollback-checks" and e["check"].startswith("GET /version")
    ]
    assert versions == ["status 2xx; json version=1.0.0"] * 2
    assert all(e["outcome"] == "pass" for e in by_name(events, "check_finished"))
    assert deployed(events) == ["1.0.0", "1.1.0", "1.0.0", "1.0.0"]
    # 1.1.0 and its rollback passed: the report and the docs do not say 1.1.0 failed.
    event = the_rehearsal(events)
    assert event["outcome"] == "return_failed"
    assert (events[-1]["event"], events[-1]["exit"]) == ("run_finished", 4)
    report = (shop.root / event["report_md"]).read_text()
    assert "proved the version and its rollback, but putting back what ran before failed" in report
    assert "failing its checks" not in report
    docs = shop.run("docs", "--out", "site")
    assert docs.code == 0, docs
    page = (shop.root / "site" / "shop.md").read_text()
    assert "the version staging ran before failed when put back" in page
    assert "found it failing its checks" not in page


# --- refusals -----------------------------------------------------------------------------------


def test_refusals_change_nothing(shop: Project) -> None:
    other = shop.run("rehearse", "--version", "1.1.0", "--env", "production")
    assert other.code == 2, other
    assert "it runs on staging, not on production" in other.err
    assert "--allow-env" in other.err

    unknown = shop.run("rehearse", "--version", "1.1.0", "--env", "qa", "--allow-env")
    assert unknown.code == 2, unknown
    assert "no environment 'qa'" in unknown.err

    first = shop.run("rehearse", "--version", "1.1.0")
    assert first.code == 3, first
    assert "nothing to roll back to" in first.err
    assert "release a previous version first" in first.err

    shop.git("tag", "v1.0.0")
    dry = shop.run("rehearse", "--version", "1.1.0", "--dry-run")
    assert dry.code == 0, dry
    assert "baseline: deploy 1.0.0 to staging" in dry.out
    assert "staging ends on 1.1.0" in dry.out
    assert "dry run: nothing was changed" in dry.out

    assert shop.journals() == []
    assert not (shop.root / "var").exists()
    assert not (shop.root / "reports").exists()


def test_a_config_file_that_does_not_parse_refuses_the_rehearsal_before_any_deploy(
    released: Project,
) -> None:
    shop = released
    config = shop.root / "config" / "staging.env"
    config.write_text(config.read_text() + "DEBUG on\n")
    shop.commit("a stray line")
    journals = shop.journals()
    for args in ((), ("--dry-run",)):
        result = shop.run("rehearse", "--version", "1.1.0", *args)
        assert result.code == 2, result
        assert "config/staging.env:3:7: expected KEY=VALUE" in result.err
        assert "nothing ran" in result.err
    assert shop.journals() == journals
    assert shop.served_version() == "1.0.0"
    assert not (shop.root / "reports").exists()


# --- the demo service ---------------------------------------------------------------------------


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Project]:
    """A copy of the demo service with its runbook, 1.0.0 tagged, in a git repository."""
    root = tmp_path / "demo"
    shutil.copytree(
        REPO / "examples" / "demo-service",
        root,
        ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", ".ruff_cache", "var"),
    )
    port = free_port()
    (root / "runbooks").mkdir()
    runbook = (REPO / "runbooks" / "demo-service.yaml").read_text()
    (root / "runbooks" / "demo-service.yaml").write_text(
        runbook.replace("http://127.0.0.1:8181", f"http://127.0.0.1:{port}")
    )
    home = tmp_path / "home"
    home.mkdir()
    url = f"http://127.0.0.1:{port}"
    project = Project(root, home, port, url, hermetic_env(home))
    project.git("init", "-q", "-b", "main")
    project.git("config", "user.name", "Release Bot")
    project.git("config", "user.email", "release@example.com")
    project.commit("the demo service")
    project.git("tag", "-a", "v1.0.0", "-m", "1.0.0")
    try:
        yield project
    finally:
        subprocess.run(
            [str(DRILLBOOK.parent / "python"), "deploy.py", "--env", "staging", "--stop"],
            cwd=root,
            env=project.env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        left = project.close()
        assert not left, f"processes left behind: {left}"


def test_the_demo_service_rehearses_1_1_0_back_to_1_0_0_and_forward_again(
    demo: Project,
) -> None:
    assert demo.run("deploy", "--version", "1.1.0").code == 0
    result = demo.run("rehearse", "--version", "1.1.0", timeout=180)

    assert result.code == 0, result
    assert demo.served_version() == "1.1.0"
    events = demo.events()
    assert deployed(events) == ["1.0.0", "1.1.0", "1.0.0", "1.1.0"]
    event = the_rehearsal(events)
    assert event["outcome"] == "ok"
    assert all(isinstance(event[k], int) for k in ("baseline_ms", "deploy_ms", "restore_ms"))
    report = (demo.root / event["report_md"]).read_text()
    assert "# Rollback rehearsal: demo-service 1.1.0 on staging" in report
    assert "| audit-log: Record who changed an order in the admin area | alice |" in report
    assert "staging runs 1.1.0 again, as before the rehearsal" in result.out


def test_a_rollback_summary_of_several_lines_keeps_the_changes_table_whole(
    released: Project,
) -> None:
    runbook = released.root / "runbooks" / "shop.yaml"
    runbook.write_text(
        runbook.read_text().replace(
            "summary: Deploy 1.0.0 again; the feature goes away.",
            "summary: |\n            Deploy 1.0.0 again | the feature goes away.\n"
            "            # Then check <the> *orders*.",
            1,
        )
    )
    released.commit("a rollback in two lines")

    result = released.run("rehearse", "--version", "1.1.0")

    assert result.code == 0, result
    event = the_rehearsal(released.events())
    report = (released.root / event["report_md"]).read_text()
    (row,) = [line for line in report.splitlines() if line.startswith("| feature:")]
    assert row == (
        "| feature: Turn the feature on | bob | Deploy 1.0.0 again \\| the feature goes away. "
        "# Then check \\<the> \\*orders\\*. | yes |"
    )
    assert not any(line.startswith("# Then") for line in report.splitlines())
