"""Staging misbehaves during the checks: no answer, a redirect elsewhere, a 500. Every check ends
within its deadline, as fail or inconclusive with expected and got; none hangs the run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _http_fixtures import LoopbackServer, Reply, serving, silent_listener
from _project import DRILLBOOK, Project, make_project

CHECKS = """\
  - version: 2.0.0
    changes:
      - id: misbehaving
        title: Staging misbehaves
        owner: dora
        expected:
          summary: Every check passes.
          checks:
            - name: silent
              get: http://127.0.0.1:{silent}/health
              timeout: 500ms
              deadline: 1s
            - name: redirected
              get: /moved
              timeout: 500ms
            - name: crashing
              get: /crash
              timeout: 500ms
              retry: {{attempts: 2, interval: 100ms}}
            - name: fine
              get: /fine
              expect: {{status: 200, body_contains: fine}}
        rollback:
          summary: Nothing to undo.
          retry_safe: true
"""


@pytest.fixture
def misbehaving(tmp_path: Path) -> Iterator[tuple[Project, LoopbackServer]]:
    with serving() as server, silent_listener() as silent:
        server.routes["/moved"] = Reply(302, "", {"Location": "http://203.0.113.9/elsewhere"})
        server.routes["/crash"] = Reply(500, "Internal Server Error: boom")
        server.routes["/fine"] = Reply(200, "all fine")
        shop = make_project(tmp_path, url=server.url)
        runbook = shop.root / "runbooks" / "shop.yaml"
        runbook.write_text(runbook.read_text() + CHECKS.format(silent=silent))
        shop.commit("misbehaving checks")
        try:
            yield shop, server
        finally:
            assert not shop.close()


def test_checks_against_a_misbehaving_staging_end_in_time(
    misbehaving: tuple[Project, LoopbackServer],
) -> None:
    shop, server = misbehaving
    began = time.monotonic()
    result = shop.run("integration", "--version", "2.0.0", timeout=30)
    elapsed = time.monotonic() - began

    assert result.code == 1, result
    assert elapsed < 6, result
    lines = {line.split()[1]: line for line in result.out.splitlines() if line.startswith(" " * 8)}
    assert lines["silent"].split()[0] == "inconclusive"
    assert lines["redirected"].split()[0] in ("fail", "inconclusive")
    assert lines["crashing"].split()[0] == "fail"
    assert lines["fine"].split()[0] == "pass"
    assert "203.0.113.9" in lines["redirected"]
    assert server.hits["/crash"] == 2
    checks = {e["check"]: e for e in shop.events() if e["event"] == "check_finished"}
    assert checks["crashing"]["got"].startswith("status 500")
    assert checks["crashing"]["expected"].startswith("status")
    assert checks["silent"]["outcome"] == "inconclusive"
    assert checks["silent"]["duration_ms"] < 2000
    assert checks["redirected"]["outcome"] != "pass"
    # As SPEC.md says of exit 1: what each check that did not pass expected, and what it got,
    # the inconclusive one too (its message alone does not say what it expected).
    out = result.out
    shown = out[out.index("did not pass: expected checks of 2.0.0 on staging\n") :]
    crashing = shown[shown.index("  fail crashing: GET /crash -> 500, expected 200 (") :]
    assert crashing.splitlines()[1:4] == [
        "      expected: status 200",
        "      got:      status 500",
        "      response: Internal Server Error: boom",
    ]
    silent = shown[shown.index("  inconclusive silent: GET ") :]
    assert silent.splitlines()[1] == "      expected: status 200"
    assert silent.splitlines()[2].startswith("      got:      no answer: ")
    assert "  pass fine" not in shown


def test_a_release_whose_checks_get_no_answer_ends_in_time(
    misbehaving: tuple[Project, LoopbackServer],
) -> None:
    # The deploy "succeeds" without a service of its own (staging is the test's server), and
    # the checks find it misbehaving: the release ends, not hung. It is the first release (no
    # tag yet) and no change has a rollback step, so nothing can undo it: exit 5, not "rolled
    # back".
    shop, _ = misbehaving
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text().replace(
        'run: [python, deploy.py, --env, "{env}", --version, "{version}", --url, "{url}"]',
        "run: [python, -c, \"print('deployed')\"]",
    )
    runbook.write_text(text)
    shop.commit("no deploy")
    began = time.monotonic()
    result = shop.run("release", "--version", "2.0.0", timeout=60)

    assert result.code == 5, result
    assert time.monotonic() - began < 10
    assert "could not be rolled back: it is the first release" in result.out
    assert "inconclusive silent" in result.out
    assert "owner: dora (misbehaving)" in result.out
    assert shop.tags() == []


def test_sigterm_during_a_check_that_waits_for_an_answer_stops_at_once(
    misbehaving: tuple[Project, LoopbackServer],
) -> None:
    # The request in flight is cut (its socket shut down): the run does not wait out the 30 s
    # read timeout, and the check says the run was stopped.
    shop, _ = misbehaving
    runbook = shop.root / "runbooks" / "shop.yaml"
    runbook.write_text(
        runbook.read_text().replace(
            "timeout: 500ms\n              deadline: 1s",
            "timeout: 30s\n              retry: {attempts: 10, interval: 100ms}",
        )
    )
    shop.commit("a silent check with a long timeout")
    proc = shop.start("integration", "--version", "2.0.0")
    shop.read_until(proc, "[1/1]")
    time.sleep(0.3)  # the silent check is waiting for its answer now
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)

    assert proc.returncode == 143, out + err
    assert time.monotonic() - began < 1.5, out + err
    events = shop.events()
    assert events[-1]["event"] == "run_finished"
    assert events[-1]["outcome"] == "interrupted"
    silent = next(e for e in events if e.get("check") == "silent")
    assert silent["attempts"] == 1
    assert silent["outcome"] == "inconclusive"
    assert "the run was stopped" in silent["got"]


BIG_BODY_RELEASE = """\
  - version: 2.0.0
    changes:
      - id: big-pages
        title: Pages too big
        owner: dora
        expected:
          summary: The catalogue page says ready, quickly.
          checks:
            - name: sampled
              get: {url}/big
              samples: 200
              concurrency: 8
              timeout: 10s
              expect: {{body_contains: ready, p95: 10s}}
        rollback:
          summary: Nothing to undo.
          retry_safe: true
"""


def test_sampling_huge_bodies_stays_in_bounded_memory(tmp_path: Path) -> None:
    # 200 samples of a body over the 4 MiB cap: each is judged as it comes, and only the
    # last keeps its body, so memory does not grow with the samples (it took ~1 GB before).
    with serving() as server:
        server.routes["/big"] = Reply(200, b"x" * (5 * 1024 * 1024))
        shop = make_project(tmp_path, extra_releases=False)
        runbook = shop.root / "runbooks" / "shop.yaml"
        runbook.write_text(runbook.read_text() + BIG_BODY_RELEASE.format(url=server.url))
        shop.commit("big pages")
        # The peak memory of the drillbook process alone, from a process that runs only it.
        measure = (
            "import resource, subprocess, sys\n"
            "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
            "print(done.stdout)\n"
        )
        argv = [sys.executable, "-c", measure, str(DRILLBOOK), "integration", "--version", "2.0.0"]
        run = subprocess.run(
            argv,
            cwd=shop.root,
            env=shop.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert not shop.close()
    code, peak_kib = map(int, run.stdout.split("\n", 1)[0].split())
    assert code == 1, run.stdout + run.stderr
    assert "no 'ready' in the first 4 MiB, the rest not read in 200 of 200 samples" in run.stdout
    assert peak_kib < 400 * 1024, f"peak RSS {peak_kib} KiB"
    finished = next(e for e in shop.events() if e["event"] == "check_finished")
    assert finished["outcome"] == "inconclusive"
    assert finished["excerpt"].startswith("xxxx")


POST_RELEASE = """\
  - version: 2.0.0
    changes:
      - id: orders
        title: Orders can be placed
        owner: dora
        expected:
          summary: An order is accepted and the catalogue answers.
          checks:
            - name: catalogue
              get: /fine
            - name: place-order
              post: /orders
              body: {item: 1}
        rollback:
          summary: Nothing to undo.
          retry_safe: true
"""


def test_failed_checks_that_include_a_post_are_not_called_safe_to_run_again(
    tmp_path: Path,
) -> None:
    with serving() as server:
        server.routes["/fine"] = Reply(503, "warming up")
        server.routes["/orders"] = Reply(200, "order placed")
        shop = make_project(tmp_path, url=server.url, extra_releases=False)
        runbook = shop.root / "runbooks" / "shop.yaml"
        runbook.write_text(runbook.read_text() + POST_RELEASE)
        shop.commit("orders")
        result = shop.run("integration", "--version", "2.0.0", timeout=30)
        assert not shop.close()

    # Only the GET failed, but running the checks again places a second order.
    assert result.code == 1, result
    assert "fail catalogue" in result.out
    assert "pass place-order" in result.out
    assert "place-order may have changed staging" in result.err
    assert "retry safe: no" in result.err
    assert server.hits["/orders"] == 1
    finished = {e["check"]: e for e in shop.events() if e["event"] == "check_finished"}
    assert finished["place-order"]["retry_safe"] is False


COMMAND_CHECKS = """\
  - version: 2.0.0
    changes:
      - id: smoke
        title: A smoke test by command
        owner: erin
        expected:
          summary: The smoke script passes.
          checks:
            - name: smoke
              run: [python, -c, "print('orders table missing'); raise SystemExit(3)", "{version}"]
            - healthy
        rollback:
          summary: Nothing to undo.
          retry_safe: true
"""


def test_a_command_check_names_its_command_exit_and_output_in_the_journal(tmp_path: Path) -> None:
    shop = make_project(tmp_path, extra_releases=False)
    try:
        runbook = shop.root / "runbooks" / "shop.yaml"
        runbook.write_text(runbook.read_text() + COMMAND_CHECKS)
        shop.commit("a command check")
        assert shop.run("deploy", "--version", "1.0.0").code == 0

        result = shop.run("integration", "--version", "2.0.0")

        assert result.code == 1, result
        checks = {e["check"]: e for e in shop.events() if e["event"] == "check_finished"}
        smoke = checks["smoke"]
        assert smoke["argv"][0] == "python"
        assert smoke["argv"][-1] == "2.0.0"  # as it ran: placeholders filled
        assert smoke["exit"] == 3
        assert smoke["output_tail"] == "orders table missing"
        assert (smoke["expected"], smoke["got"]) == ("exit 0", "exit 3")
        # An HTTP check runs no command: it names none.
        assert checks["healthy"]["outcome"] == "pass"
        assert not {"argv", "exit", "output_tail"} & set(checks["healthy"])
    finally:
        assert not shop.close()


def test_more_than_five_checks_that_did_not_pass_are_counted_not_dropped(tmp_path: Path) -> None:
    # The digest details five; the others are said to exist, not left to look like passes.
    failing = "".join(
        f"            - {{name: broken-{i}, get: /broken-{i}, timeout: 500ms}}\n" for i in range(7)
    )
    with serving() as server:
        for i in range(7):
            server.routes[f"/broken-{i}"] = Reply(500, "boom")
        shop = make_project(tmp_path, url=server.url)
        runbook = shop.root / "runbooks" / "shop.yaml"
        text = CHECKS.format(silent=0)
        head, tail = text.split("            - name: silent", 1)
        runbook.write_text(
            runbook.read_text() + head + failing + tail[tail.index("        rollback:") :]
        )
        shop.commit("seven broken checks")
        try:
            result = shop.run("integration", "--version", "2.0.0", timeout=30)
        finally:
            assert not shop.close()
    assert result.code == 1, result
    shown = result.out[result.out.index("did not pass: expected checks of 2.0.0 on staging\n") :]
    assert [line.split()[1] for line in shown.splitlines() if line.startswith("  fail ")] == [
        f"broken-{i}:" for i in range(5)
    ]
    assert "  ... and 2 more that did not pass, each above and in the journal" in shown
    failed = [e["check"] for e in shop.events() if e.get("outcome") == "fail"]
    assert [c for c in failed if c.startswith("broken-")] == [f"broken-{i}" for i in range(7)]
