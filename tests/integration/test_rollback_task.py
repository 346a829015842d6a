"""`drillbook rollback` by hand: past versions in between, with the journal lost, cut short;
and runs that cannot finish: a journal that fills up after the deploy, a note that crashes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

from _project import DRILLBOOK, Project, free_port


def by_name(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e.get("event") == name]


def test_a_rollback_past_a_version_is_proven_by_the_checks_of_its_target(
    released: Project,
) -> None:
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    assert shop.run("release", "--version", "1.2.0").code == 0

    result = shop.run("rollback", "--env", "staging", "--to", "1.0.0")

    assert result.code == 0, result
    assert shop.served_version() == "1.0.0"
    events = shop.events()
    assert events[0]["undone"] == ["1.2.0", "1.1.0"]
    assert {c["owner"] for c in events[0]["changes"]} == {"bob", "carol"}
    checks = by_name(events, "check_finished")
    # 1.1.0's rollback checks describe 1.0.0; 1.2.0's would expect 1.1.0.
    assert [c["expected"] for c in checks if c["check"].startswith("GET /version")] == [
        "status 2xx; json version=1.0.0"
    ]
    assert all(c["outcome"] == "pass" for c in checks)


def test_with_the_journal_lost_a_rollback_to_a_named_version_still_works(
    released: Project,
) -> None:
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    shutil.rmtree(shop.root / ".drillbook")

    unknown = shop.run("rollback", "--env", "staging")
    assert unknown.code == 2, unknown
    assert "say where to go with --to VERSION (released, by git tags: 1.0.0, 1.1.0)" in (
        unknown.err
    )

    result = shop.run("rollback", "--env", "staging", "--to", "1.0.0")
    assert result.code == 0, result
    assert "the journal does not say what staging runs" in result.out
    assert "proven with the rollback checks of 1.1.0" in result.out
    assert "staging rolled back to 1.0.0; the rollback checks pass" in result.out
    assert "None" not in result.text
    assert shop.served_version() == "1.0.0"

    # And when it fails, the digest says so without naming a version it does not know.
    shutil.rmtree(shop.root / ".drillbook")
    failed = shop.run("rollback", "--env", "staging", "--to", "1.0.0", FIXTURE_FAIL_DEPLOY="1.0.0")
    assert failed.code == 5, failed
    assert "the rollback of staging to 1.0.0 failed: a person must act" in failed.text
    assert "None" not in failed.text


def test_a_rollback_not_safe_to_repeat_says_so_when_cut_short(released: Project) -> None:
    shop = released
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text().replace(
        "          summary: Deploy 1.0.0 again; the feature goes away.\n"
        "          retry_safe: true\n",
        "          summary: Deploy 1.0.0 again; the feature goes away.\n"
        "          retry_safe: false\n"
        "          steps:\n"
        "            - [python, -c, \"import time; print('undoing', flush=True); "
        'time.sleep(30)"]\n',
        1,
    )
    assert "retry_safe: false" in text
    runbook.write_text(text)
    shop.commit("a rollback step that must not run twice")
    assert shop.run("release", "--version", "1.1.0").code == 0

    proc = shop.start("rollback", "--env", "staging")
    shop.read_until(proc, "undoing")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)

    assert proc.returncode == 130, out + err
    assert "retry safe: no" in err
    assert "not safe to run twice" in err
    assert shop.events()[0]["retry_safe"] is False


def test_a_rollback_cut_short_in_its_checks_says_it_would_go_further_if_run_again(
    released: Project,
) -> None:
    shop = released
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text().replace(
        "          summary: Deploy 1.0.0 again; the feature goes away.\n"
        "          retry_safe: true\n"
        "          checks:\n",
        "          summary: Deploy 1.0.0 again; the feature goes away.\n"
        "          retry_safe: true\n"
        "          checks:\n"
        "            - run: [python, -c, \"import time; print('checking', flush=True); "
        'time.sleep(30)"]\n',
        1,
    )
    assert "checking" in text
    runbook.write_text(text)
    shop.commit("a slow rollback check")
    assert shop.run("release", "--version", "1.1.0").code == 0
    proc = shop.start("rollback", "--env", "staging")
    shop.wait_for_event(
        lambda e: e.get("event") == "command_started" and e.get("step") == "rollback-checks",
        proc=proc,
    )
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)

    assert proc.returncode == 143, out + err
    # The redeploy finished: staging runs 1.0.0, and the same command again would not finish
    # this rollback but make another one, from 1.0.0 further down.
    assert shop.served_version() == "1.0.0"
    assert "its redeploy of 1.0.0 had finished, so staging runs 1.0.0" in err
    assert "the rollback is not proven" in err
    assert "`drillbook integration --env staging --version 1.0.0` checks 1.0.0 there" in err
    assert "running the rollback again would go back further" in err
    assert "retry safe: no" in err
    assert not shop.strays()


def test_a_rollback_cut_short_in_its_redeploy_says_to_run_it_again(released: Project) -> None:
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    proc = shop.start("rollback", "--env", "staging", FIXTURE_HANG="1.0.0")
    shop.read_until(proc, "deploying 1.0.0")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)

    assert proc.returncode == 130, out + err
    assert "staging may be half rolled back from 1.1.0 to 1.0.0" in err
    assert "`drillbook rollback --env staging --to 1.0.0` runs the rollback again" in err
    assert "retry safe: yes" in err
    again = shop.run("rollback", "--env", "staging", "--to", "1.0.0")
    assert again.code == 0, again
    assert shop.served_version() == "1.0.0"


def test_a_journal_that_fills_up_after_the_deploy_is_not_nothing_changed(
    released: Project,
) -> None:
    shop = released
    # Measure where the deploy's event ends in a whole run of 1.1.0, then run it again with
    # the journal's file capped just past it: the next event fails, as on a full disk.
    assert shop.run("release", "--version", "1.1.0").code == 0
    journal = shop.journals()[-1].read_bytes()
    cap = journal.index(b'"event":"deployed"')
    cap = journal.index(b"\n", cap) + 1 + 40
    assert shop.run("rollback", "--env", "staging", "--to", "1.0.0").code == 0
    shop.git("tag", "-d", "v1.1.0")
    (shop.root / "notes" / "shop-1.1.0-rollback.md").unlink()

    result = shop.run("release", "--version", "1.1.0", file_size_limit=cap)

    assert result.code == 5, result
    assert "cannot write the journal" in result.err
    assert "staging was already changed by deploy" in result.err
    assert "a person must act" in result.err
    assert "retry safe: no" in result.err
    assert shop.served_version() == "1.1.0"
    # Not "run the command again", which refuses while the run is open: how to go on.
    run_id = shop.journals()[-1].stem
    assert f"`drillbook resume {run_id}` continues it from the step it stopped at" in result.err


def test_a_journal_that_fills_up_when_the_rollback_would_start_says_how_to_finish_it(
    released: Project,
) -> None:
    shop = released
    # Measure where rollback_started begins in a failed release of 1.1.0, then fail it again
    # with the journal's file capped inside that line: the rollback cannot be recorded.
    assert shop.run("release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0").code == 4
    journal = shop.journals()[-1].read_bytes()
    cap = journal.index(b'"event":"rollback_started"')
    cap = journal.rindex(b"\n", 0, cap) + 1 + 30

    result = shop.run("release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0", file_size_limit=cap)

    assert result.code == 5, result
    assert "cannot write the journal" in result.err
    assert shop.served_version() == "1.1.0"  # the rollback did not start unrecorded
    run_id = shop.journals()[-1].stem
    assert "it had failed at integration, so it cannot be resumed" in result.err
    assert f"`drillbook abandon {run_id}` closes it" in result.err
    assert "`drillbook rollback --env staging --to 1.0.0` rolls back and proves it" in result.err
    assert shop.run("abandon", run_id).code == 0
    assert shop.run("rollback", "--env", "staging", "--to", "1.0.0").code == 0
    assert shop.served_version() == "1.0.0"


def test_a_journal_that_fills_up_after_the_rollbacks_redeploy_warns_against_running_it_again(
    released: Project,
) -> None:
    shop = released
    # Measure where the redeploy's event ends in a whole rollback of 1.1.0, then roll back
    # again with the journal's file capped just past it: the checks cannot be recorded.
    assert shop.run("release", "--version", "1.1.0").code == 0
    assert shop.run("rollback", "--env", "staging").code == 0
    journal = shop.journals()[-1].read_bytes()
    cap = journal.index(b'"event":"deployed"')
    cap = journal.index(b"\n", cap) + 1 + 40
    assert shop.run("deploy", "--version", "1.1.0").code == 0

    result = shop.run("rollback", "--env", "staging", file_size_limit=cap)

    assert result.code == 5, result
    assert "cannot write the journal" in result.err
    assert shop.served_version() == "1.0.0"
    run_id = shop.journals()[-1].stem
    # Not "run the rollback again": from 1.0.0 it would go back further, not finish this one.
    assert "its redeploy of 1.0.0 had finished, so staging runs 1.0.0, not yet proven" in result.err
    assert f"`drillbook abandon {run_id}` closes it" in result.err
    assert "`drillbook integration --env staging --version 1.0.0` checks 1.0.0 there" in result.err
    assert "running the rollback again would go back further" in result.err
    assert "then run the rollback again if it is still needed" not in result.err
    # The next run that changes staging is refused with the same words.
    refused = shop.run("deploy", "--version", "1.0.0")
    assert refused.code == 3, refused
    assert "running the rollback again would go back further" in refused.err


def test_a_note_template_that_crashes_fails_its_step_and_the_release_rolls_back(
    released: Project,
) -> None:
    shop = released
    templates = shop.root / "templates"
    templates.mkdir()
    # It renders in the preflight's trial and fails only in the run itself, so the failure
    # is met at the note step, after the deploy and the tag.
    (templates / "rollback-note.md.j2").write_text(
        '# note\n{% if run_id != "(this run)" %}{% for x in range(10**9) %}{% endfor %}'
        "{% endif %}\n"
    )
    shop.commit("a note template that cannot render")

    result = shop.run("release", "--version", "1.1.0", "--format", "json")

    assert result.code == 4, result
    assert shop.served_version() == "1.0.0"
    assert shop.tags() == ["v1.0.0"]  # the tag made before the note is taken back
    events = shop.events()
    note = [e for e in by_name(events, "step_finished") if e["step"] == "rollback-note"]
    assert note and note[0]["outcome"] == "failed"
    assert events[-1]["event"] == "run_finished"
    assert events[-1]["exit"] == 4


def test_rollback_and_rehearse_refuse_a_check_url_before_any_step(released: Project) -> None:
    shop = released
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text()
    text = text.replace(
        "  production:\n", "  production:\n    allow_hosts: [shop.example.com, other.example.com]\n"
    )
    text = text.replace(
        "            - get: /version\n              expect: {json: {version: 1.0.0}}\n",
        "            - get: /version\n              expect: {json: {version: 1.0.0}}\n"
        "            - get: https://other.example.com/x\n",
    )
    runbook.write_text(text)
    shop.commit("a rollback check on a host staging may not reach")
    assert shop.run("check").code == 0  # allowed somewhere: check cannot know where it runs
    assert shop.run("release", "--version", "1.1.0").code == 3  # refused up front
    shop.git("tag", "-a", "v1.1.0", "-m", "made by hand")
    assert shop.run("deploy", "--version", "1.1.0").code == 0
    journals = shop.journals()

    for args in (("rollback", "--env", "staging"), ("rehearse", "--version", "1.1.0")):
        result = shop.run(*args)
        assert result.code == 3, result
        assert "https://other.example.com/x refused for environment staging" in result.err
        assert "nothing ran" in result.err
        assert shop.journals() == journals
        assert shop.served_version() == "1.1.0"


def test_a_rollback_of_production_asks_first_and_nothing_runs_unconfirmed(
    released: Project,
) -> None:
    shop = released
    runbook = shop.root / "runbooks" / "shop.yaml"
    prod = f"http://127.0.0.1:{free_port()}"
    runbook.write_text(runbook.read_text().replace("https://shop.example.com", prod))
    shop.commit("production on loopback")
    assert shop.run("release", "--version", "1.1.0").code == 0
    journals = shop.journals()

    # No terminal to ask on: refused, nothing ran.
    piped = shop.start("rollback", "--env", "production", "--to", "1.0.0")
    out, err = piped.communicate(timeout=60)
    assert piped.returncode == 2, out + err
    assert "rolling back production needs confirmation, and there is no terminal" in err
    assert "pass --yes to confirm" in err

    # A terminal: it asks, and a wrong answer is no.
    leader, follower = os.openpty()
    try:
        asked = subprocess.Popen(
            [str(DRILLBOOK), "rollback", "--env", "production", "--to", "1.0.0"],
            cwd=shop.root,
            env=shop.env,
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(leader, b"staging\n")
        out, err = asked.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert asked.returncode == 2, out + err
    assert "rolling back production: type the environment's name" in err
    assert "not confirmed (expected 'production'); nothing ran" in err
    assert shop.journals() == journals
    assert not (shop.root / "var" / "production").exists()

    confirmed = shop.run("rollback", "--env", "production", "--to", "1.0.0", "--yes")
    assert confirmed.code == 0, confirmed
    assert shop.served_version() == "1.1.0"  # staging untouched
    assert shop.events()[0]["env"] == "production"


def test_each_release_undone_sees_its_own_version_and_the_one_it_goes_back_to(
    released: Project,
) -> None:
    shop = released
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text()
    text = text.replace(
        "          summary: Deploy 1.0.0 again; the feature goes away.\n"
        "          retry_safe: true\n",
        "          summary: Deploy 1.0.0 again; the feature goes away.\n"
        "          retry_safe: true\n"
        "          steps:\n"
        "            - name: undo the feature\n"
        "              shell: true\n"
        '              run: \'echo "feature $DRILLBOOK_VERSION>$DRILLBOOK_PREVIOUS"'
        " >> var/undo.log'\n",
    )
    text = text.replace(
        "          summary: Deploy 1.1.0 again.\n          retry_safe: true\n",
        "          summary: Deploy 1.1.0 again.\n"
        "          retry_safe: true\n"
        "          steps:\n"
        "            - name: undo the basket\n"
        '              run: [python, -c, \'import sys; open("var/undo.log", "a").write('
        '"basket " + ">".join(sys.argv[1:]) + "\\n")\', \'{version}\', \'{previous}\']\n',
    )
    runbook.write_text(text)
    shop.commit("rollback steps")
    assert shop.run("release", "--version", "1.1.0").code == 0
    assert shop.run("release", "--version", "1.2.0").code == 0

    result = shop.run("rollback", "--env", "staging", "--to", "1.0.0")

    assert result.code == 0, result
    # Newest first; 1.1.0's step undoes 1.1.0 to 1.0.0, as its rollback note says.
    undo = (shop.root / "var" / "undo.log").read_text().splitlines()
    assert undo == ["basket 1.2.0>1.1.0", "feature 1.1.0>1.0.0"]
    started = {e["step"]: e for e in by_name(shop.events(), "step_started")}
    assert started["rollback-step:basket:1"]["argv"][-2:] == ["1.2.0", "1.1.0"]
    assert "1.1.0" not in " ".join(started["rollback-step:feature:1"]["argv"])
    assert shop.served_version() == "1.0.0"


def test_a_version_taken_out_of_the_runbook_rolls_back_without_claiming_checks_passed(
    released: Project,
) -> None:
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    assert shop.run("release", "--version", "1.2.0").code == 0
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text()
    runbook.write_text(text[: text.index("  - version: 1.2.0")])
    shop.commit("1.2.0 is withdrawn")

    result = shop.run("rollback", "--env", "staging")

    assert result.code == 0, result
    assert "staging runs 1.2.0, which the runbook does not declare any more" in result.out
    assert "rollback steps are unknown and skipped" in result.out
    assert "no rollback checks describe 1.1.0, so nothing proved it" in result.out
    assert "the rollback checks pass" not in result.out
    assert shop.served_version() == "1.1.0"
    assert by_name(shop.events(), "check_finished") == []


def add_rollback_check_to_1_2_0(shop: Project, check: str, message: str) -> None:
    """Put `check` (YAML, two-space indented) first in 1.2.0's rollback checks, and commit."""
    runbook = shop.root / "runbooks" / "shop.yaml"
    head = "          summary: Deploy 1.1.0 again.\n          retry_safe: true\n          checks:\n"
    lines = "".join(f"            {line}\n" for line in check.splitlines())
    text = runbook.read_text()
    assert head in text
    runbook.write_text(text.replace(head, head + lines))
    shop.commit(message)


def test_rollback_checks_that_fail_after_the_redeploy_warn_against_running_it_again(
    released: Project,
) -> None:
    shop = released
    add_rollback_check_to_1_2_0(
        shop, "- get: /feature\n  expect: {status: 200}", "1.2.0's rollback checks the feature"
    )
    assert shop.run("release", "--version", "1.1.0").code == 0
    assert shop.run("release", "--version", "1.2.0").code == 0

    result = shop.run("rollback", "--env", "staging", FIXTURE_BROKEN="1.1.0")

    assert result.code == 5, result
    assert "the rollback of staging from 1.2.0 to 1.1.0 failed: a person must act" in result.out
    assert "Its redeploy finished, so staging runs 1.1.0 and its rollback checks fail" in result.out
    assert "do not run the rollback again, it would go back further, from 1.1.0 to 1.0.0" in (
        result.out
    )
    assert shop.served_version() == "1.1.0"
    assert shop.events()[-1]["exit"] == 5

    # A redeploy that failed left nothing new: running the rollback again is the retry.
    shop.run("deploy", "--version", "1.2.0")
    failed = shop.run("rollback", "--env", "staging", FIXTURE_FAIL_DEPLOY="1.1.0")
    assert failed.code == 5, failed
    assert "go back further" not in failed.out


def test_a_release_whose_rollback_checks_fail_too_shows_what_the_rollback_expected_and_got(
    released: Project,
) -> None:
    shop = released
    add_rollback_check_to_1_2_0(
        shop,
        "- get: /health\n  expect: {json: {version: 1.1.9}}",
        "a rollback check that cannot pass",
    )
    assert shop.run("release", "--version", "1.1.0").code == 0

    result = shop.run("release", "--version", "1.2.0", FIXTURE_BROKEN="1.2.0")

    assert result.code == 5, result
    digest = result.out[result.out.index("incident digest") :]
    assert "failed step: expected checks of 1.2.0 on staging" in digest
    # "start with the failed rollback step above": it is there, with expected and got.
    assert "failed rollback step: rollback checks on staging (2 checks)" in digest
    assert "expected: status 2xx; json version=1.1.9" in digest
    assert "got:      json version=1.1.0" in digest
    assert digest.index("failed rollback step") < digest.index("a person must act")
    # The journal now says 1.1.0 runs: `drillbook rollback` would undo 1.1.0 too.
    assert (
        "Its redeploy finished, so staging runs 1.1.0 and its rollback checks fail: do not run "
        "the rollback again, it would go back further, from 1.1.0 to 1.0.0"
    ) in result.out


def test_a_rollback_of_production_that_would_be_refused_is_refused_before_it_asks(
    released: Project,
) -> None:
    shop = released
    shop.git("tag", "-a", "v1.1.0", "-m", "made by hand")
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text().replace(
        "    config: config/staging.env\n",
        "    config: config/staging.env\n    allow_hosts: [127.0.0.1, other.example.com]\n",
    )
    text = text.replace(
        "            - get: /version\n              expect: {json: {version: 1.0.0}}\n",
        "            - get: /version\n              expect: {json: {version: 1.0.0}}\n"
        "            - get: https://other.example.com/x\n",
    )
    runbook.write_text(text)
    shop.commit("a rollback check on a host production may not reach")
    journals = shop.journals()

    proc = shop.start("rollback", "--env", "production", "--to", "1.0.0")
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 3, out + err
    assert "https://other.example.com/x refused for environment production" in err
    assert "confirmation" not in err
    assert shop.journals() == journals


def test_a_rollback_step_that_fails_says_the_rollback_is_what_to_run_again_and_if_it_is_safe(
    released: Project,
) -> None:
    shop = released
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text().replace(
        "          summary: Deploy 1.0.0 again; the feature goes away.\n"
        "          retry_safe: true\n",
        "          summary: Deploy 1.0.0 again; the feature goes away.\n"
        "          retry_safe: false\n"
        "          steps:\n"
        "            - [python, -c, \"import os, sys; sys.exit(int(os.environ.get('UNDO_EXIT', "
        "'0')))\"]\n",
        1,
    )
    assert "UNDO_EXIT" in text
    runbook.write_text(text)
    shop.commit("a rollback step that must not run twice")
    assert shop.run("release", "--version", "1.1.0").code == 0

    result = shop.run("rollback", "--env", "staging", UNDO_EXIT="3")

    assert result.code == 5, result
    # The redeploy never ran: the journal still says 1.1.0, and a deploy of 1.0.0 would leave
    # out the step that failed; the rollback is what to run again, and not blindly.
    assert shop.served_version() == "1.1.0"
    assert (
        "The journal still says staging runs 1.1.0: once the cause is fixed, `drillbook "
        "rollback --env staging --to 1.0.0` runs the rollback again from its first step, but "
        "the rollback of feature is not safe to run twice: check what it did on staging first"
    ) in result.out
    row = json.loads(shop.run("history", "--format", "json").out)[0]
    assert row["undo"].endswith(
        "`drillbook rollback --env staging --to 1.0.0` runs it again from its first step "
        "(not safe to run twice: check what its steps did first)"
    )

    again = shop.run("rollback", "--env", "staging", "--to", "1.0.0")
    assert again.code == 0, again
    assert shop.served_version() == "1.0.0"


def test_a_release_whose_rollback_fails_says_what_the_journal_says_runs_and_what_to_type(
    released: Project,
) -> None:
    shop = released
    # The deploy of 1.1.0 and the redeploy of 1.0.0 both fail: the journal never said 1.1.0
    # runs, so `rollback` would go below 1.0.0; only a deploy puts 1.0.0 back.
    result = shop.run("release", "--version", "1.1.0", FIXTURE_FAIL_DEPLOY="1.1.0,1.0.0")

    assert result.code == 5, result
    assert (
        "The deploy of 1.1.0 failed, so the journal does not say staging runs it and "
        "`drillbook rollback` would not undo it: once the cause is fixed, `drillbook deploy "
        "--env staging --version 1.0.0` puts 1.0.0 back"
    ) in result.out
    row = json.loads(shop.run("history", "--format", "json").out)[0]
    assert row["undo"].endswith("`drillbook deploy --env staging --version 1.0.0`")

    # 1.1.0 deployed, its checks and then the redeploy of 1.0.0 fail: the journal says 1.1.0.
    failed = shop.run(
        "release", "--version", "1.1.0", FIXTURE_BROKEN="1.1.0", FIXTURE_FAIL_DEPLOY="1.0.0"
    )
    assert failed.code == 5, failed
    assert (
        "The journal still says staging runs 1.1.0: once the cause is fixed, `drillbook "
        "rollback --env staging --to 1.0.0` runs the rollback again from its first step"
    ) in failed.out
    assert "not safe to run twice" not in failed.out


def test_a_rollback_that_would_skip_a_release_whose_tag_was_lost_is_refused(
    released: Project,
) -> None:
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    assert shop.run("release", "--version", "1.2.0").code == 0
    commit = shop.git("rev-list", "-n", "1", "v1.1.0")
    shop.git("tag", "-d", "v1.1.0")
    before = shop.snapshot()

    # By tags 1.2.0 goes back to 1.0.0, and its checks (which expect 1.1.0) would fail it.
    result = shop.run("rollback", "--env", "staging")

    assert result.code == 3, result
    assert (
        "1.1.0 was released, but its tag v1.1.0 is missing: staging runs 1.2.0, and the "
        "rollback would skip 1.1.0 and go back to 1.0.0"
    ) in result.err
    assert f"git tag -a v1.1.0 -m 1.1.0 {commit}; then run it again" in result.err
    # A rehearsal of 1.2.0 would do the same: its baseline would be 1.0.0.
    rehearsal = shop.run("rehearse", "--version", "1.2.0")
    assert rehearsal.code == 3, rehearsal
    assert (
        "1.1.0 was released, but its tag v1.1.0 is missing: the rehearsal of 1.2.0 would skip "
        "1.1.0 and go back to 1.0.0"
    ) in rehearsal.err
    assert shop.served_version() == "1.2.0"
    assert shop.snapshot() == before

    # Named, it is not "never released" (a typo to check): the tag is what is missing.
    named = shop.run("rollback", "--env", "staging", "--to", "1.1.0")
    assert named.code == 3, named
    assert "1.1.0 was released, but its tag v1.1.0 is missing" in named.err
    assert f"git tag -a v1.1.0 -m 1.1.0 {commit}; then roll back again" in named.err
    assert "never released" not in named.err

    shop.git("tag", "-a", "v1.1.0", "-m", "1.1.0", commit)
    again = shop.run("rollback", "--env", "staging")
    assert again.code == 0, again
    assert shop.served_version() == "1.1.0"

    # A version deployed but never released (no release made its tag) is skipped, as before.
    shop.git("tag", "-d", "v1.1.0")
    shutil.rmtree(shop.root / ".drillbook")
    assert shop.run("deploy", "--version", "1.1.0").code == 0
    assert shop.run("deploy", "--version", "1.2.0").code == 0
    past = shop.run("rollback", "--env", "staging")
    assert "is missing" not in past.err, past
    assert "rolling back staging from 1.2.0 to 1.0.0" in past.out


def test_a_release_whose_rollback_would_skip_a_release_that_lost_its_tag_is_refused(
    released: Project,
) -> None:
    shop = released
    assert shop.run("release", "--version", "1.1.0").code == 0
    commit = shop.git("rev-list", "-n", "1", "v1.1.0")
    shop.git("tag", "-d", "v1.1.0")

    # Failing, 1.2.0 would roll back to 1.0.0, its checks expecting 1.1.0: refused first.
    plan = shop.run("plan", "--version", "1.2.0")
    assert plan.code == 3, plan
    result = shop.run("release", "--version", "1.2.0")

    assert result.code == 3, result
    assert (
        "1.1.0 was released, but its tag v1.1.0 is missing: if 1.2.0 fails, its rollback would "
        "skip 1.1.0 and go back to 1.0.0"
    ) in result.err
    assert f"git tag -a v1.1.0 -m 1.1.0 {commit}; then run it again" in result.err
    assert shop.served_version() == "1.1.0"
    assert shop.tags() == ["v1.0.0"]
