"""The benchmark harness works: quick mode of one cheap figure gives a ratio and a table row.

Speed is never asserted here; only that the harness measures, compares and reports.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench_run(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCH))
    module = importlib.import_module("run")
    yield module
    for name in ("run", "harness", *(m.__name__ for m in module.FIGURES.values())):
        sys.modules.pop(name, None)


def test_quick_journal_figure_gives_ratios_and_rows(bench_run, tmp_path, capsys) -> None:
    code = bench_run.main(["--quick", "--only", "journal", "--out", str(tmp_path)])

    assert code == 0
    written = json.loads((tmp_path / "journal.json").read_text())
    figures = written["figures"]
    assert figures, "the journal figure wrote no result"
    for figure in figures:
        assert figure["ratio"] > 0
        assert figure["runs"] == 3
        assert len(figure["subject_s"]) == len(figure["baseline_s"]) == 3
        assert figure["baseline"]
    assert written["machine"]["nproc"] >= 1
    out = capsys.readouterr().out
    header = "| figure | subject median (IQR) | baseline |"
    assert header in out
    row = next(line for line in out.splitlines() if line.startswith("| journal cost per event"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2] == "same lines, os.write, no sync"
    assert cells[4].split("x")[0].replace(".", "").isdigit()  # "62.10x (49.15-72.76)"


def test_ratio_direction_and_goal(bench_run) -> None:
    harness = sys.modules["harness"]
    fast = harness.Samples("fast", [1.0, 1.0, 1.0])
    slow = harness.Samples("slow", [2.0, 2.0, 2.0])

    time_ratio = harness.Result("t", slow, fast, goal=harness.Goal("<=", 1.5))
    assert time_ratio.ratio == 2.0
    assert time_ratio.met is False
    throughput = harness.Result("t", fast, slow, goal=harness.Goal(">=", 0.8), throughput=True)
    assert throughput.ratio == 2.0
    assert throughput.met is True
    assert harness.row(time_ratio)[-1] == "**no**"


@pytest.mark.slow
def test_the_whole_quick_bench_runs_and_reports_every_figure(tmp_path: Path) -> None:
    """CI's mode, as a user runs it: every figure measured, each a ratio against a baseline."""
    import subprocess

    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    written = json.loads((tmp_path / "all.json").read_text())
    assert written["quick"] is True
    names = {path.stem for path in tmp_path.glob("*.json")} - {"all"}
    assert names == {
        "startup", "check", "steps", "release", "checks", "docs", "ready", "journal", "process"
    }  # fmt: skip
    figures = written["figures"]
    for figure in figures:
        assert figure["ratio"] > 0, figure["figure"]
        assert figure["baseline"], figure["figure"]
        assert len(figure["subject_s"]) == figure["runs"] >= 2, figure["figure"]
    goals = [f for f in figures if f["goal"]]
    assert len(goals) >= 9  # every figure of the table that has a goal
    assert all(isinstance(f["met"], bool) for f in goals)
