"""`drillbook verify-config` as the person on call runs it: real processes on real files.

Each test writes a small project (a runbook and its config files) into `tmp_path` and runs the
console script, asserting on the exit code, the output and what must never be in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _project import Project

BIN = Path(sys.executable).parent
DRILLBOOK = str(BIN / "drillbook")
SECRET = "s3cr3t-value-Zq9x"

RUNBOOK = """\
drillbook: 1
service: shop
owner: team-shop
environments:
  staging:
    url: http://127.0.0.1:8181
    config: config/staging.env
  production:
    url: https://shop.example.com
    config: config/production.env
config:
  required: [LOG_LEVEL, SECRET_KEY]
  secrets: [SECRET_KEY]
  rules:
    LOG_LEVEL: {one_of: [debug, info]}
{extra_rules}
  same_keys_as: production
"""


def make(tmp_path: Path, staging: str, *, rules: str = "", production: str = "") -> Path:
    """A project whose staging config is `staging`, with `rules` added under `config.rules`."""
    (tmp_path / "runbooks").mkdir()
    extra = textwrap.indent(textwrap.dedent(rules).strip("\n"), "    ") if rules else ""
    text = RUNBOOK.replace("{extra_rules}\n", extra + "\n" if extra else "")
    (tmp_path / "runbooks" / "shop.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "staging.env").write_text(staging, encoding="utf-8")
    (tmp_path / "config" / "production.env").write_text(
        production or f"LOG_LEVEL=info\nSECRET_KEY={SECRET}-prod\n", encoding="utf-8"
    )
    return tmp_path


def run(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DRILLBOOK_DEBUG"}
    env["NO_COLOR"] = "1"
    done = subprocess.run(
        [DRILLBOOK, "verify-config", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done
    assert "internal error" not in done.stdout + done.stderr, done
    return done


def test_a_catastrophic_pattern_stops_with_exit_2_instead_of_hanging(tmp_path: Path) -> None:
    # '(a+)+$' backtracks 2**40 ways on 40 a's and a '!': without a bound it runs for days.
    root = make(
        tmp_path,
        f"LOG_LEVEL=info\nSECRET_KEY={SECRET}\nNAME={'a' * 40}!\n",
        rules="NAME: {pattern: '^(a+)+$'}",
        production=f"LOG_LEVEL=info\nSECRET_KEY=x{SECRET}\nNAME=a\n",
    )
    start = time.monotonic()
    done = run(root, timeout=60)
    assert time.monotonic() - start < 30, "verify-config must not hang on a pattern"
    assert done.returncode == 2, done
    assert "config/staging.env:3:" in done.stderr, done.stderr
    assert "config.rules.NAME.pattern" in done.stderr, done.stderr
    assert "'^(a+)+$'" in done.stderr, done.stderr
    assert "a" * 40 not in done.stdout + done.stderr


def test_a_catastrophic_pattern_on_a_secret_names_no_value(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        f"LOG_LEVEL=info\nSECRET_KEY={'a' * 40}!\n",
        rules="SECRET_KEY: {pattern: '^(a+)+$'}",
    )
    done = run(root, "--format", "json", timeout=60)
    assert done.returncode == 2, done
    payload = json.loads(done.stdout)
    assert payload["exit"] == 2
    assert "a" * 40 not in done.stdout + done.stderr


def test_json_findings_name_the_file_their_line_is_in(tmp_path: Path) -> None:
    # The drift finding for a key only production has points at production's file and line.
    root = make(
        tmp_path,
        f"LOG_LEVEL=info\nSECRET_KEY={SECRET}\n",
        production=f"LOG_LEVEL=info\nSECRET_KEY=x{SECRET}\nFEATURE=on\n",
    )
    done = run(root, "--format", "json")
    assert done.returncode == 1, done
    findings = json.loads(done.stdout)["findings"]
    (drift,) = [f for f in findings if f["outcome"] == "fail"]
    assert (drift["key"], drift["line"], drift["file"]) == ("FEATURE", 3, "config/production.env")
    level = next(f for f in findings if f["key"] == "LOG_LEVEL")
    assert (level["line"], level["file"]) == (1, "config/staging.env")
    assert SECRET not in done.stdout + done.stderr


def test_a_huge_integer_is_judged_not_a_crash(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        f"LOG_LEVEL=info\nSECRET_KEY={SECRET}\nPAGE_SIZE={'9' * 5000}\n",
        rules="PAGE_SIZE: {integer: {min: 1, max: 500}}",
        production=f"LOG_LEVEL=info\nSECRET_KEY=x{SECRET}\nPAGE_SIZE=50\n",
    )
    done = run(root)
    assert done.returncode == 1, done
    assert "PAGE_SIZE: expected an integer from 1 to 500, got '999" in done.stdout, done.stdout


def test_a_pattern_too_big_to_compile_is_an_invalid_runbook(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        f"LOG_LEVEL=info\nSECRET_KEY={SECRET}\n",
        rules="NAME: {pattern: 'a{99999999999}'}",
    )
    done = run(root)
    assert done.returncode == 2, done
    assert "runbooks/shop.yaml:16:" in done.stderr, done.stderr
    assert "expected a valid regular expression" in done.stderr, done.stderr


def test_old_mac_line_endings_are_refused_not_read_as_one_value(tmp_path: Path) -> None:
    # Lone carriage returns once made the whole file the value of its first key.
    root = make(tmp_path, f"LOG_LEVEL=info\rSECRET_KEY={SECRET}\r")
    done = run(root)
    assert done.returncode == 2, done
    assert "config/staging.env:1:15:" in done.stderr, done.stderr
    assert "carriage return" in done.stderr, done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_release_stops_before_its_gates_on_a_catastrophic_pattern(shop: Project) -> None:
    runbook = shop.root / "runbooks" / "shop.yaml"
    text = runbook.read_text()
    rule = "    LOG_LEVEL: {one_of: [debug, info, warning, error]}\n"
    runbook.write_text(text.replace(rule, rule + "    NAME: {pattern: '^(a+)+$'}\n"))
    for env in ("staging", "production"):
        with (shop.root / "config" / f"{env}.env").open("a") as config:
            config.write(f"NAME={'a' * 40}!\n")
    shop.commit("a pattern that backtracks")
    before = shop.snapshot()
    start = time.monotonic()
    result = shop.run("release", "--version", "1.0.0", timeout=60)
    assert time.monotonic() - start < 30, "release must not hang on a pattern"
    assert result.code == 2, result
    assert "config.rules.NAME.pattern" in result.err, result
    assert "gate.py" not in result.text
    assert shop.served_version() is None
    assert shop.tags() == []
    assert shop.snapshot() == before


def test_a_config_path_the_system_refuses_to_look_at_is_exit_2(tmp_path: Path) -> None:
    # A name longer than the file system takes: stat() fails with ENAMETOOLONG, not ENOENT.
    name = f"config/{'a' * 300}.env"
    root = make(tmp_path, f"LOG_LEVEL=info\nSECRET_KEY={SECRET}\n")
    runbook = root / "runbooks" / "shop.yaml"
    runbook.write_text(runbook.read_text().replace("config/staging.env", name, 1))
    done = run(root)
    assert done.returncode == 2, done
    assert f"{name}:1:1: expected a readable config file" in done.stderr, done.stderr


def test_a_config_folder_that_cannot_be_entered_is_exit_2(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root enters a folder of mode 000: the refusal cannot happen")
    root = make(tmp_path, f"LOG_LEVEL=info\nSECRET_KEY={SECRET}\n")
    (root / "config").chmod(0)
    try:
        done = run(root)
    finally:
        (root / "config").chmod(0o755)
    assert done.returncode == 2, done
    assert "config/staging.env:1:1: expected a readable config file" in done.stderr, done.stderr


def test_a_failed_rule_ends_with_what_failed_what_to_do_and_that_a_retry_is_safe(
    tmp_path: Path,
) -> None:
    root = make(tmp_path, f"LOG_LEVEL=loud\nSECRET_KEY={SECRET}\n")
    for fmt in ("text", "json"):
        done = run(root, "--format", fmt)
        assert done.returncode == 1, done
        assert (
            "drillbook verify-config: 1 config rule failed in config/staging.env for staging: "
            "LOG_LEVEL\n"
        ) in done.stderr, done.stderr
        assert "then run verify-config again; it only reads" in done.stderr
        assert "retry safe: yes" in done.stderr
        assert SECRET not in done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is False  # one JSON document, the report's


def test_the_closing_line_names_at_most_five_keys(tmp_path: Path) -> None:
    staging = f"LOG_LEVEL=info\nSECRET_KEY={SECRET}\n"
    production = staging + "".join(f"EXTRA_{i}=x\n" for i in range(8))
    done = run(make(tmp_path, staging, production=production))
    assert done.returncode == 1, done
    assert "EXTRA_0, EXTRA_1, EXTRA_2, EXTRA_3, EXTRA_4 and 3 more keys\n" in done.stderr
    assert "EXTRA_5" not in done.stderr
