"""The five-minute adoption path, for real: build the wheel, install it with its `demo` extra in
a fresh virtual environment, and run `drillbook demo` from a folder that has nothing to do with
this checkout. Proves that the wheel carries the demo service, its runbook, the templates and
the schema, and that the `demo` extra brings everything the demo's gates run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from _demo_checks import assert_story_as_told

pytestmark = pytest.mark.slow

CHECKOUT = Path(__file__).resolve().parents[2]


def run(argv: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    assert done.returncode == 0, f"{argv}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(CHECKOUT)], out, 600
    )
    (found,) = out.glob("drillbook-*.whl")
    return found


def test_the_installed_wheel_tells_the_demo_story(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, 300)
    bin_dir = venv / "bin"
    run([str(bin_dir / "pip"), "install", "-q", f"{wheel}[demo]"], tmp_path, 900)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "tour"
    # Only the new environment on PATH: nothing of this checkout's venv may help the demo.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"])
    env["NO_COLOR"] = "1"

    began = time.monotonic()
    done = subprocess.run(
        [str(bin_dir / "drillbook"), "demo", "--keep", str(root)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    took = time.monotonic() - began

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    installed = run(
        [str(bin_dir / "python"), "-c", "import drillbook; print(drillbook.__file__)"],
        elsewhere,
        60,
    )
    assert str(venv) in installed  # the wheel, not this checkout
    assert_story_as_told(root, done.stdout)
    assert not list(elsewhere.iterdir())
    assert took < 120, f"the demo took {took:.0f}s"
