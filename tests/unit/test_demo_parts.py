"""The demo's parts that need no server: the runbook it writes, its acts, what output it keeps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drillbook.demo import Compact, demo_runbook, free_port, missing_modules, story
from drillbook.errors import PreconditionFailed
from drillbook.runbook import load_runbook
from drillbook.scaffold import SCHEMA_LINE

RELEASE_OUTPUT = """\
[1/8] preflight: git repository, clean tree
      ok preflight (0.0s)
[3/8] unit: pytest -q tests
      unit │ ..................                       [100%]
      unit │ 50 passed in 1.11s
      ok unit (2.0s)
[6/8] expected checks of 1.2.0 on staging (3 checks)
        pass healthy [admin-enrichment, bob]: GET /health -> 200 (attempt 1/20; retry safe)
        fail admin-responsive [admin-enrichment, bob]: GET /admin/orders p95 515ms, \
expected <= 300ms (20 samples; p50 507ms; attempt 1/1; retry safe)
      failed integration (10.2s) - 1 of 3 checks did not pass
rolling back staging from 1.2.0 to 1.1.0: integration failed: 1 of 3 checks did not pass
[rollback 1/2] deploy 1.1.0 to staging again
      rollback-deploy │ deploying demo-service 1.1.0 to staging at http://127.0.0.1:36519
      ok rollback-deploy (0.7s)
"""


def compact(text: str, width: int = 200) -> list[str]:
    filt = Compact(width)
    out: list[str] = []
    for line in text.splitlines():
        out += filt.feed(line)
    return out + filt.flush()


def test_compact_keeps_steps_checks_and_the_rollback_and_drops_tool_output() -> None:
    assert compact(RELEASE_OUTPUT) == [
        "[1/8] preflight: git repository, clean tree  ok 0.0s",
        "[3/8] unit: pytest -q tests  ok 2.0s",
        "[6/8] expected checks of 1.2.0 on staging (3 checks)",
        "        pass healthy [admin-enrichment, bob]: GET /health -> 200",
        "        fail admin-responsive [admin-enrichment, bob]: GET /admin/orders p95 515ms, "
        "expected <= 300ms",
        "      failed integration (10.2s) - 1 of 3 checks did not pass",
        "rolling back staging from 1.2.0 to 1.1.0: integration failed: 1 of 3 checks did not pass",
        "[rollback 1/2] deploy 1.1.0 to staging again  ok 0.7s",
    ]


def test_compact_shows_the_tool_output_of_a_failed_step() -> None:
    text = "[2/8] lint: ruff check .\n      lint │ F401 unused import\n      failed lint (0.1s)\n"

    assert compact(text) == ["[2/8] lint: ruff check .  failed 0.1s", "      │ F401 unused import"]


def test_compact_cuts_long_lines_to_the_width() -> None:
    (line,) = compact("x" * 300, width=50)

    assert len(line) == 50
    assert line.endswith("…")


def test_the_demo_runbook_puts_staging_on_the_port_and_stays_valid(tmp_path: Path) -> None:
    text, url = demo_runbook(40123)

    assert url == "http://127.0.0.1:40123"
    assert "    url: http://127.0.0.1:40123\n" in text
    assert "8181" not in text
    assert text.splitlines()[0] == SCHEMA_LINE
    assert "url: https://orders.example.com" in text  # production is left alone
    (tmp_path / "runbooks").mkdir()
    path = tmp_path / "runbooks" / "demo-service.yaml"
    path.write_text(text)
    loaded = load_runbook(path, root=tmp_path)
    assert loaded.runbook.environments["staging"].url == url


def test_the_story_runs_the_releases_the_runbook_declares() -> None:
    text, _ = demo_runbook(40123)
    acts = {act.key: act for act in story()}

    for act in acts.values():
        if act.args[0] in ("release", "rehearse"):
            assert f'version: "{act.args[-1]}"' in text
    assert [a.key for a in story()] == [
        "setup",
        "release-1.1.0",
        "rehearse",
        "release-1.2.0",
        "docs",
        "history",
    ]
    # The acts after the set-up are numbered 1, 2, 3, ... in the order they run.
    assert [a.label.split()[0] for a in story()[1:]] == [str(n) for n in range(1, 6)]
    assert acts["release-1.2.0"].exit == 4
    assert all(a.exit == 0 for k, a in acts.items() if k != "release-1.2.0")
    # Every act's command is a task of this build.
    from drillbook.tasks import namespace

    assert {a.args[0] for a in acts.values()} <= set(namespace.task_names)


def test_missing_modules_names_what_the_extra_brings() -> None:
    assert missing_modules(lambda name: object()) == []
    assert missing_modules(lambda name: None if name in ("uvicorn", "ruff") else object()) == [
        "uvicorn",
        "ruff",
    ]


def test_demo_without_its_extra_exits_2_and_says_what_to_install(tmp_path: Path) -> None:
    # `None` in sys.modules makes find_spec report the module as absent.
    code = (
        "import sys\n"
        "sys.modules['fastapi'] = None\n"
        "sys.argv = ['drillbook', 'demo', '--keep', sys.argv[1]]\n"
        "from drillbook.cli import main\n"
        "main()\n"
    )
    target = tmp_path / "ws"
    done = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2, done.stderr
    assert "fastapi" in done.stderr
    assert "pip install 'drillbook[demo]'" in done.stderr
    assert not target.exists()


@pytest.mark.parametrize("content", ["file", "folder"])
def test_demo_refuses_a_keep_folder_that_is_not_empty(tmp_path: Path, content: str) -> None:
    target = tmp_path / "ws"
    if content == "file":
        target.write_text("x")
    else:
        target.mkdir()
        (target / "mine.txt").write_text("x")

    done = subprocess.run(
        [sys.executable, "-m", "drillbook", "demo", "--keep", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert "--keep" in done.stderr
    assert "Traceback" not in done.stderr
    if content == "folder":
        assert sorted(p.name for p in target.iterdir()) == ["mine.txt"]


def test_no_port_to_serve_on_is_said_as_such_not_as_an_unwritable_folder() -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: bind fails as with no free port left.
    with pytest.raises(PreconditionFailed, match=r"no free TCP port on 192\.0\.2\.1") as caught:
        free_port("192.0.2.1")
    assert "folder" not in str(caught.value)
    assert "drillbook demo" in (caught.value.hint or "")
