"""`check` and `docs` over many runbooks: spread over worker processes, the same as in one.

Each command runs as a real process twice, with `DRILLBOOK_JOBS=1` (one process) and
`DRILLBOOK_JOBS=2` (two forked workers), and both must print, exit and write the same bytes,
for good runbooks and bad ones. One in-process run proves the workers are really used.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from _procs import alive, live_children

from drillbook import parallel
from drillbook.cli import build_program

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux")

DRILLBOOK = str(Path(sys.executable).parent / "drillbook")
SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "runbooks" / "good" / "spec-outline.yaml"
COUNT = 120  # above parallel.MIN_ITEMS, so the size alone would choose workers too


def run(argv: list[str], cwd: Path, jobs: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DRILLBOOK_DEBUG"}
    env.update(NO_COLOR="1", DRILLBOOK_JOBS=str(jobs))
    done = subprocess.run(
        [DRILLBOOK, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


@pytest.fixture
def many(tmp_path: Path) -> Path:
    """A project of COUNT runbooks, one service each, from the spec's outline."""
    text = SPEC.read_text()
    folder = tmp_path / "runbooks"
    folder.mkdir()
    for i in range(COUNT):
        (folder / f"svc-{i:03d}.yaml").write_text(
            text.replace("service: demo-service", f"service: svc-{i:03d}")
        )
    return tmp_path


def break_two(project: Path) -> None:
    """Make two runbooks invalid, far apart, with different problems."""
    early = project / "runbooks" / "svc-007.yaml"
    early.write_text(early.read_text().replace("owner: alice", "owner: 42"))
    late = project / "runbooks" / "svc-101.yaml"
    late.write_text(late.read_text().replace("timeout: 60s", "timeout: 9"))


def site(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_check_of_good_runbooks_is_the_same_in_workers(many: Path) -> None:
    one = run(["check"], many, jobs=1)
    two = run(["check"], many, jobs=2)

    assert one.returncode == two.returncode == 0, one.stdout + one.stderr
    assert two.stdout == one.stdout
    assert f"{COUNT} runbooks checked: {COUNT} valid, 0 invalid" in two.stdout
    assert two.stdout.index("svc-000.yaml") < two.stdout.index("svc-119.yaml")


@pytest.mark.parametrize("format", ["text", "json"])
def test_check_of_bad_runbooks_is_the_same_in_workers(many: Path, format: str) -> None:
    break_two(many)

    one = run(["check", "--format", format], many, jobs=1)
    two = run(["check", "--format", format], many, jobs=2)

    assert one.returncode == two.returncode == 2
    assert (two.stdout, two.stderr) == (one.stdout, one.stderr)
    if format == "json":
        payload = json.loads(two.stdout)
        bad = [f["file"] for f in payload["files"] if not f["valid"]]
        assert bad == ["runbooks/svc-007.yaml", "runbooks/svc-101.yaml"]
        assert payload["checked"] == COUNT
    else:
        assert "runbooks/svc-007.yaml:" in two.stdout
        assert "2 invalid" in two.stdout


def test_docs_written_by_workers_are_the_same_bytes(many: Path) -> None:
    one = run(["docs", "--out", "one"], many, jobs=1)
    two = run(["docs", "--out", "two"], many, jobs=2)

    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    pages = site(many / "two")
    assert len(pages) == 2 * COUNT + 2
    assert pages == site(many / "one")
    assert b"svc-119" in pages["index.html"]
    # Each mode finds the other's pages fresh.
    assert run(["docs", "--out", "one", "--check"], many, jobs=2).returncode == 0
    assert run(["docs", "--out", "two", "--check"], many, jobs=1).returncode == 0


def test_docs_of_a_bad_runbook_fail_the_same_in_workers(many: Path) -> None:
    break_two(many)

    one = run(["docs"], many, jobs=1)
    two = run(["docs"], many, jobs=2)

    assert one.returncode == two.returncode == 2
    assert (two.stdout, two.stderr) == (one.stdout, one.stderr)
    assert "svc-007.yaml" in two.stderr
    assert "svc-101.yaml" in two.stderr  # every bad runbook is told, in the order of the files
    assert not (many / "site").exists()


def test_two_runbooks_of_one_service_are_refused_in_workers(many: Path) -> None:
    copy = many / "runbooks" / "svc-zzz.yaml"
    copy.write_text((many / "runbooks" / "svc-003.yaml").read_text())

    done = run(["docs"], many, jobs=2)

    assert done.returncode == run(["docs"], many, jobs=1).returncode != 0
    assert "runbooks/svc-003.yaml and runbooks/svc-zzz.yaml both describe service" in done.stderr


def test_a_bad_jobs_variable_is_refused_before_any_work(many: Path) -> None:
    env_bad = run(["check"], many, jobs=0)

    assert env_bad.returncode == 2
    assert "DRILLBOOK_JOBS must be a whole number of processes, 1 or more; found '0'" in (
        env_bad.stderr
    )


def test_the_commands_use_workers(many: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process, so the pool can be watched: each command forks workers for its runbooks."""
    calls: list[int] = []
    real = parallel._in_workers

    def watched(fn, items, jobs):  # a spy with the real signature
        calls.append(len(items))
        results = real(fn, items, jobs)
        assert parallel.FAILED not in results
        return results

    monkeypatch.setattr(parallel, "_in_workers", watched)
    monkeypatch.setenv("DRILLBOOK_JOBS", "2")
    monkeypatch.chdir(many)
    for argv in (["check"], ["docs"]):
        try:
            build_program().run(["drillbook", *argv])
        except SystemExit as ended:
            assert ended.code in (0, None), argv

    assert calls == [COUNT, COUNT]
    assert len(site(many / "site")) == 2 * COUNT + 2


def test_ctrl_c_while_workers_render_stops_them_all_and_writes_nothing(many: Path) -> None:
    text = SPEC.read_text()
    for i in range(COUNT, 600):  # enough runbooks that the workers are caught working
        (many / "runbooks" / f"svc-{i:03d}.yaml").write_text(
            text.replace("service: demo-service", f"service: svc-{i:03d}")
        )
    env = {**os.environ, "NO_COLOR": "1", "DRILLBOOK_JOBS": "2"}
    proc = subprocess.Popen(
        [DRILLBOOK, "docs"],
        cwd=many,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # The default action for SIGINT, whatever the shell that started pytest left.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    workers: list[int] = []
    deadline = time.monotonic() + 60
    while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
        workers = live_children(proc.pid)
        time.sleep(0.005)
    assert len(workers) == 2, "the workers were not seen"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 130, out + err
    assert "interrupted (SIGINT) before it finished" in err
    assert "Traceback" not in out + err
    assert not (many / "site").exists()
    assert not [pid for pid in workers if alive(pid)]


@pytest.mark.parametrize("closed", ["stdout", "stderr"])
@pytest.mark.parametrize("argv", [["check"], ["docs", "--check"]])
def test_workers_start_with_a_standard_stream_closed(
    many: Path, closed: str, argv: list[str]
) -> None:
    # `drillbook check >&-` (or `2>&-`): Python has no sys.stdout (or sys.stderr) to flush.
    assert run(["docs"], many, jobs=1).returncode == 0
    redirect = ">&-" if closed == "stdout" else "2>&-"
    env = {k: v for k, v in os.environ.items() if k != "DRILLBOOK_DEBUG"}
    env.update(NO_COLOR="1", DRILLBOOK_JOBS="2")
    done = subprocess.run(
        ["sh", "-c", f'exec "$0" "$@" {redirect}', DRILLBOOK, *argv],
        cwd=many,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    # The workers did their work either way; a result nobody could read is said (exit 3).
    assert done.returncode == (3 if closed == "stdout" else 0), done.stdout + done.stderr
    assert "internal error" not in done.stdout + done.stderr
    if closed == "stdout":
        assert "stdout was closed before drillbook started" in done.stderr
    if closed == "stderr":
        assert done.stdout.strip().splitlines()[-1] in (
            f"{COUNT} runbooks checked: {COUNT} valid, 0 invalid",
            f"docs in site are fresh ({2 * COUNT + 2} files)",
        )
