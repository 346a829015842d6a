"""`drillbook docs`: the pages for the person on call, their freshness check, and their links.

The golden files under tests/golden/docs/ are the pages of the fixture project (see
`_docs_project`); regenerate them with `UPDATE_GOLDEN=1 pytest tests/unit/test_docs.py` and read
the diff before committing it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from _docs_project import OLD_SHA, SERVICE, T0, make_project, runbook_sha, write_run

from drillbook import docs_chart
from drillbook.cli import build_program
from drillbook.docs import build_site, first_difference
from drillbook.docs_service import gather, previous_version, service_context
from drillbook.render import md_link, md_text
from drillbook.runbook import load_runbook
from drillbook.secrets import Masker

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "docs"
STAGING_TOKEN = "tok_live_9f8e7d6c5b4a"
PRODUCTION_TOKEN = "tok_live_prod_1a2b3c4d"
PAGES = ["index.html", "index.md", "shop.html", "shop.md"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def loaded(root: Path):
    return load_runbook(root / "runbooks" / "shop.yaml", root=root)


def site(root: Path, out: Path | None = None, **kwargs):
    """The pages, with only the runbook's own secrets masked, so the goldens do not depend on
    the environment variables of the machine that runs the tests."""
    masker = Masker([STAGING_TOKEN, PRODUCTION_TOKEN])
    return build_site(
        root, [loaded(root)], out or root / "site", maskers={SERVICE: masker}, **kwargs
    )


def run_cli(root: Path, *args: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.chdir(root)
    try:
        build_program().run(["drillbook", *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def local_links(out: Path) -> list[tuple[Path, str, str]]:
    """(page, href, problem) for every local link of the pages in `out` that does not resolve."""
    broken = []
    for page in sorted(out.glob("*.html")) + sorted(out.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        hrefs = re.findall(r'href="([^"]*)"', text) + re.findall(r"\]\(([^)\s]+)\)", text)
        for href in hrefs:
            parts = urlsplit(href)
            if parts.scheme in ("http", "https", "mailto"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.is_file():
                broken.append((page, href, "no such file"))
                continue
            if parts.fragment:
                body = target.read_text(encoding="utf-8")
                if f'id="{parts.fragment}"' not in body:
                    broken.append((page, href, "no such anchor"))
    return broken


# --- golden pages ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
def test_pages_match_the_golden_files(project: Path, name: str) -> None:
    pages = {p.name: p.text for p in site(project)}
    assert sorted(pages) == PAGES
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(pages[name], encoding="utf-8")
    assert pages[name] == golden.read_text(encoding="utf-8"), (
        f"{name} differs from {golden}; if the change is intended, run with UPDATE_GOLDEN=1"
    )


def test_the_same_inputs_give_the_same_bytes(project: Path, tmp_path: Path) -> None:
    first = site(project)
    twin = make_project(tmp_path / "twin")
    assert [(p.name, p.text) for p in site(twin)] == [(p.name, p.text) for p in first]


def test_the_page_answers_the_first_questions_of_an_incident(project: Path) -> None:
    pages = {p.name: p.text for p in site(project)}
    md = pages["shop.md"]
    # who, where to page, what healthy looks like, where the logs are
    assert "- **Owner:** team-checkout" in md
    assert "- **Page:** #checkout-oncall (PagerDuty: Checkout)" in md
    assert "GET /health answers 200 with status ok within 2s (up to 10 tries, 500ms apart)" in md
    assert "staging: `var/staging/logs/shop.jsonl`" in md
    assert "production: `var/production/logs/shop.jsonl`" in md
    # what runs where, and how to undo it
    assert "| staging | http://127.0.0.1:8282 | [1.1.0](#release-1-1-0) |" in md
    assert "`drillbook rollback --env production --to 1.0.0`" in md
    # the exact rollback of 1.1.0: the change's step, the redeploy, the checks, NOT retry safe
    section = md[md.index("### 1.1.0") : md.index("### 1.0.0")]
    assert "1. `python manage.py flags set saved-cards off --env staging`" in section
    assert "1. `python deploy.py --env staging --version 1.0.0` (deploy 1.0.0 again)" in section
    assert "`python manage.py flags get saved-cards` exits 0 and prints 'off'" in section
    assert "**Retry safe:** NO" in section
    assert "[notes/shop-1.1.0-rollback.md](../notes/shop-1.1.0-rollback.md)" in section
    assert "**Last rehearsal:** 2026-11-20 09:00:40 UTC, ok, restored in 2.4 s" in section
    # newest release first
    assert md.index("### 1.3.0") < md.index("### 1.2.0") < md.index("### 1.1.0")
    # what changed recently, newest first, with its undo command
    recent = md[md.index("## What changed recently") : md.index("## Rehearsals")]
    assert recent.index("1.1.0 → 1.2.0 | rolled back") < recent.index("| production |")


# --- warnings ----------------------------------------------------------------------------------


def _warnings(root: Path) -> dict[str, str]:
    ctx = service_context(loaded(root), gather(root), root / "site")
    return {r["version"]: (r["warning"] or {}).get("text", "") for r in ctx["releases"]}


def test_warns_of_a_release_never_rehearsed_and_of_a_changed_runbook(project: Path) -> None:
    warnings = _warnings(project)
    assert warnings["1.3.0"] == "1.3.0 has never been rehearsed: its rollback is untested."
    assert warnings["1.2.0"].startswith("The runbook changed since 1.2.0 was last rehearsed")
    assert warnings["1.1.0"] == ""  # its last rehearsal passed with today's runbook
    assert warnings["1.0.0"] == ""  # the first release has nothing older to go back to
    md = {p.name: p.text for p in site(project)}["shop.md"]
    assert "Run `drillbook rehearse --version 1.3.0`. ([details](#release-1-3-0))" in md


def test_editing_the_runbook_makes_every_rehearsal_stale(project: Path) -> None:
    runbook = project / "runbooks" / "shop.yaml"
    runbook.write_text(runbook.read_text() + "\n# edited\n")
    warnings = _warnings(project)
    assert warnings["1.1.0"].startswith("The runbook changed since 1.1.0 was last rehearsed")


def test_warns_when_the_last_rehearsal_failed(project: Path) -> None:
    write_run(
        project,
        "20261122T090000Z-ffffff",
        T0 + 96 * 3600,
        "rehearse",
        "staging",
        "1.1.0",
        [
            (
                "rehearsal_finished",
                {
                    "outcome": "restore_failed",
                    "restore_ms": 60000,
                    "runbook_sha256": runbook_sha(project),
                    "previous": "1.0.0",
                },
            )
        ],
        outcome="rollback_failed",
    )
    assert _warnings(project)["1.1.0"].startswith(
        "The last rehearsal of 1.1.0 (2026-11-22 09:00:10 UTC) ended with a rollback that "
        "failed, a step or its checks. Fix the rollback, then rehearse again."
    )


def test_a_rehearsal_stopped_at_its_baseline_is_not_said_to_have_deployed_nothing(
    project: Path,
) -> None:
    # The baseline deploys 1.0.0 first: "before any deploy" would be untrue.
    write_run(
        project,
        "20261122T090000Z-fcfcfc",
        T0 + 96 * 3600,
        "rehearse",
        "staging",
        "1.1.0",
        [
            ("deployed", {"version": "1.0.0", "previous": "1.1.0", "by": "rehearse-baseline"}),
            (
                "rehearsal_finished",
                {
                    "outcome": "baseline_failed",
                    "runbook_sha256": runbook_sha(project),
                    "previous": "1.0.0",
                },
            ),
        ],
        outcome="baseline_failed",
    )
    assert _warnings(project)["1.1.0"] == (
        "The last rehearsal of 1.1.0 (2026-11-22 09:00:20 UTC) stopped at its baseline: the "
        "previous version did not deploy or did not pass the rollback checks, so the version "
        "itself was never deployed. Fix the environment or the rollback checks, then rehearse "
        "again."
    )


def test_a_rehearsal_that_rolled_back_elsewhere_than_today_leaves_the_rollback_untested(
    project: Path,
) -> None:
    # 1.1.0 was rehearsed back to 0.9.0 (1.0.0 not tagged yet); today it goes back to 1.0.0.
    write_run(
        project,
        "20261122T090000Z-fdfdfd",
        T0 + 96 * 3600,
        "rehearse",
        "staging",
        "1.1.0",
        [
            (
                "rehearsal_finished",
                {
                    "outcome": "ok",
                    "restore_ms": 4000,
                    "runbook_sha256": runbook_sha(project),
                    "previous": "0.9.0",
                },
            )
        ],
    )
    # Without tags the runbook's releases stand in for them, and say nothing of the past.
    assert _warnings(project)["1.1.0"] == ""
    git = ["git", "-c", "user.name=Docs", "-c", "user.email=docs@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=project, check=True)
    for version in ("0.9.0", "1.0.0", "1.1.0"):
        subprocess.run([*git, "tag", f"v{version}"], cwd=project, check=True)
    assert _warnings(project)["1.1.0"] == (
        "1.1.0 was last rehearsed (2026-11-22 09:00:10 UTC) rolling back to 0.9.0, but its "
        "rollback now goes to 1.0.0: that rollback is untested."
    )


def test_a_rehearsal_that_found_the_version_failing_says_the_rollback_worked(
    project: Path,
) -> None:
    write_run(
        project,
        "20261122T090000Z-fefefe",
        T0 + 96 * 3600,
        "rehearse",
        "staging",
        "1.1.0",
        [
            (
                "rehearsal_finished",
                {
                    "outcome": "failed_checks_restored",
                    "restore_ms": 4000,
                    "runbook_sha256": runbook_sha(project),
                    "previous": "1.0.0",
                },
            )
        ],
        outcome="failed_checks_restored",
    )
    assert _warnings(project)["1.1.0"] == (
        "The last rehearsal of 1.1.0 (2026-11-22 09:00:10 UTC) found it failing its checks; "
        "the rollback worked. Fix it, then rehearse again."
    )


# --- the chart ---------------------------------------------------------------------------------


def test_the_chart_shows_time_to_restore_with_an_accessible_title(project: Path) -> None:
    html = {p.name: p.text for p in site(project)}["shop.html"]
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert 'role="img"' in svg
    assert '<title id="chart-title">Time to restore shop across 3 rehearsals</title>' in svg
    assert svg.count("<rect") == 3
    assert ">4.1 s<" in svg and ">0.8 s<" in svg and ">5 s<" in svg  # bars and axis in seconds


def test_without_rehearsals_the_chart_is_a_sentence(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "docs-project", root)
    html = {p.name: p.text for p in site(root)}["shop.html"]
    assert "<svg" not in html
    assert "No rehearsal of shop recorded a time to restore yet, so there is no chart" in html
    assert "Nothing yet: the journal holds no release" in html


@pytest.mark.parametrize(
    ("values", "unit", "top"),
    [([120, 340], "ms", "500 ms"), ([850, 4100, 2350], "s", "5 s"), ([0], "ms", "1 ms")],
)
def test_chart_axis_is_a_round_number_in_a_readable_unit(
    values: list[int], unit: str, top: str
) -> None:
    chart = docs_chart.restore_chart("x", [("1.0.0", "2026-11-20", v, "ok") for v in values])
    assert chart is not None
    assert chart["unit"] == unit
    assert chart["ticks"][-1]["label"] == top
    assert all(chart["top"] <= bar["y"] <= chart["base"] for bar in chart["bars"])


def test_no_chart_without_times() -> None:
    assert docs_chart.restore_chart("x", [("1.0.0", "", None, "ok")]) is None


@pytest.mark.parametrize("ms", [1e308, 10**400, float("inf"), float("nan"), -5])
def test_a_time_no_rehearsal_takes_draws_no_bar(ms: float) -> None:
    chart = docs_chart.restore_chart("x", [("1.0.0", "", ms, "ok"), ("1.1.0", "", 2400, "ok")])
    assert chart is not None
    assert [bar["version"] for bar in chart["bars"]] == ["1.1.0"]


# --- links -------------------------------------------------------------------------------------


@pytest.mark.parametrize("out", ["site", "docs/runbooks/html"])
def test_every_local_link_resolves(
    project: Path, out: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli(project, "docs", "--out", out, monkeypatch=monkeypatch) == 0
    assert local_links(project / out) == []
    html = (project / out / "shop.html").read_text()
    depth = "../" * len(Path(out).parts)
    assert f'href="{depth}notes/shop-1.1.0-rollback.md"' in html
    assert f'href="{depth}reports/shop-1.1.0-rehearsal-20261120T090000Z-bbbbbb.md"' in html
    # the JSON report of that rehearsal was never written, so it is not linked
    assert "bbbbbb.json" not in html


# --- the command: write, --check, exit codes --------------------------------------------------


def test_docs_writes_and_check_finds_them_fresh(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    assert sorted(p.name for p in (project / "site").iterdir()) == PAGES
    assert "wrote 4 of 4 files to site" in capsys.readouterr().out
    assert run_cli(project, "docs", "--check", monkeypatch=monkeypatch) == 0
    assert "docs in site are fresh (4 files)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("on_disk", "rendered", "said"),
    [
        ("a\nb\n", "a\nc\n", "line 2 has `b`, docs would write `c`"),
        ("a\n", "a\nb\n", "line 2 has the end of the page, docs would write `b`"),
        ("a\r\n", "a\n", "the same lines, with other line endings"),
        ("x" * 50 + "old\n", "x" * 50 + "new\n", f"line 1 has `...{'x' * 30}old`, docs would"),
        ("\x1b[31m\n", "ok\n", "line 1 has `\\x1b[31m`"),
    ],
)
def test_the_first_difference_of_a_stale_page(on_disk: str, rendered: str, said: str) -> None:
    assert said in first_difference(on_disk, rendered)


def test_check_in_a_checkout_without_the_journal_says_what_differs_and_why(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Docs written and committed where the releases ran, checked by CI in a fresh checkout:
    # no .drillbook/journal there.
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    shutil.rmtree(project / ".drillbook")
    written = {p.name: p.read_bytes() for p in (project / "site").iterdir()}
    capsys.readouterr()

    assert run_cli(project, "docs", "--check", monkeypatch=monkeypatch) == 1

    out, err = capsys.readouterr()
    line = next(x for x in out.splitlines() if x.startswith("stale    site/shop.md"))
    assert "- **As of:** no journal events yet" in line
    assert re.search(r"line \d+ has `- \*\*As of:\*\* 2026-", line), line
    assert "the runs in the journal (.drillbook/journal/)" in err
    assert "a fresh CI checkout" in err
    assert {p.name: p.read_bytes() for p in (project / "site").iterdir()} == written


def test_check_fails_on_missing_docs(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(project, "docs", "--check", monkeypatch=monkeypatch) == 1
    captured = capsys.readouterr()
    assert "missing  site/shop.html" in captured.out
    assert "docs are stale: run `drillbook docs`" in captured.err
    assert not (project / "site").exists()  # --check writes nothing


def test_check_of_a_file_where_the_folder_goes_says_so(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "site").write_text("not the docs\n")
    assert run_cli(project, "docs", "--check", monkeypatch=monkeypatch) == 1
    out, err = capsys.readouterr()
    assert "missing  site/shop.html" in out and "stale" not in out
    assert "site is a file, expected the docs folder: move it out of the way" in err


def test_check_notices_an_edited_runbook(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    runbook = project / "runbooks" / "shop.yaml"
    runbook.write_text(runbook.read_text().replace("Cache baskets for ten", "Cache baskets for 5"))
    capsys.readouterr()
    assert run_cli(project, "docs", "--check", monkeypatch=monkeypatch) == 1
    out = capsys.readouterr().out
    assert "stale    site/shop.html" in out and "stale    site/index.html" in out


def test_check_notices_a_new_journal_event(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    write_run(
        project,
        "20261122T120000Z-999999",
        T0 + 99 * 3600,
        "deploy",
        "production",
        "1.0.0",
        [("deployed", {"previous": "1.1.0", "by": "deploy"})],
    )
    capsys.readouterr()
    assert run_cli(project, "docs", "--check", monkeypatch=monkeypatch) == 1
    assert "stale    site/shop.md" in capsys.readouterr().out
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    md = (project / "site" / "shop.md").read_text()
    assert "| production | https://shop.example.com | [1.0.0](#release-1-0-0) |" in md
    assert run_cli(project, "docs", "--check", monkeypatch=monkeypatch) == 0


def test_pages_of_a_gone_service_are_extra_and_removed(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    shutil.copy(project / "site" / "shop.html", project / "site" / "old-service.html")
    (project / "site" / "README.md").write_text("my own notes, not generated\n")
    capsys.readouterr()
    assert run_cli(project, "docs", "--check", monkeypatch=monkeypatch) == 1
    assert "extra    site/old-service.html" in capsys.readouterr().out
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    assert not (project / "site" / "old-service.html").exists()
    assert (project / "site" / "README.md").exists()  # not ours: never touched


def test_a_persons_file_that_names_the_marker_in_its_text_is_kept(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    readme = project / "site" / "README.md"
    readme.write_text("# This folder\n\nThe pages here are generated by drillbook docs.\n")
    capsys.readouterr()
    assert run_cli(project, "docs", "--check", monkeypatch=monkeypatch) == 0
    assert "README" not in capsys.readouterr().out
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    assert readme.read_text().endswith("generated by drillbook docs.\n")


def test_an_out_folder_of_a_persons_own_files_is_not_written_over(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = project / "mine"
    mine.mkdir()
    (mine / "index.md").write_text("# my notes\n")
    (mine / "shop.html").write_text("<p>my page</p>\n")
    (mine / "shop.md").write_text("")  # empty: nothing to lose
    assert run_cli(project, "docs", "--out", "mine", "--check", monkeypatch=monkeypatch) == 1
    err = capsys.readouterr().err
    assert "mine/index.md, mine/shop.html are not written by drillbook docs" in err
    assert run_cli(project, "docs", "--out", "mine", monkeypatch=monkeypatch) == 3
    err = capsys.readouterr().err
    assert "it holds index.md, shop.html, not written by drillbook docs" in err
    assert "nothing was written" in err and "hint: move those files out of the way" in err
    assert (mine / "index.md").read_text() == "# my notes\n"
    assert (mine / "shop.html").read_text() == "<p>my page</p>\n"
    assert sorted(p.name for p in mine.iterdir()) == ["index.md", "shop.html", "shop.md"]
    (mine / "index.md").unlink()
    (mine / "shop.html").unlink()
    assert run_cli(project, "docs", "--out", "mine", monkeypatch=monkeypatch) == 0
    assert sorted(p.name for p in mine.iterdir()) == PAGES


def test_a_page_whose_marker_comes_late_in_its_head_is_still_ours_to_write_again(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A project's template with text of many bytes a character before the marker.
    (project / "templates").mkdir()
    (project / "templates" / "docs-service.md.j2").write_text(
        "<!-- " + "é" * 2100 + " -->\n<!-- {{ marker }} -->\n# {{ service }}: {{ owner }}\n",
        encoding="utf-8",
    )
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    runbook = project / "runbooks" / "shop.yaml"
    runbook.write_text(runbook.read_text().replace("owner: team-checkout", "owner: team-pay"))
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    assert (project / "site" / "shop.md").read_text(encoding="utf-8").endswith("shop: team-pay\n")


def test_an_out_folder_that_cannot_be_written_exits_3_before_writing(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "blocked").write_text("a file where a folder should be\n")
    assert run_cli(project, "docs", "--out", "blocked/site", monkeypatch=monkeypatch) == 3
    assert "blocked is a file, expected a folder" in capsys.readouterr().err


def test_an_out_link_that_leads_nowhere_exits_3_saying_so(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "site").symlink_to(project / "gone" / "site")
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 3
    err = capsys.readouterr().err
    assert f"site is a symbolic link to {project}/gone/site, which does not exist" in err
    assert f"hint: create {project}/gone/site, or remove the link" in err
    assert not (project / "gone").exists()


def test_an_out_folder_the_system_refuses_exits_3_with_its_reason(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Permission checks pass there even for root, yet nothing can be made in /proc.
    assert run_cli(project, "docs", "--out", "/proc/drillbook-docs", monkeypatch=monkeypatch) == 3
    err = capsys.readouterr().err
    assert "cannot write the docs to /proc/drillbook-docs: No such file or directory" in err
    assert "internal error" not in err


def test_a_page_that_cannot_be_written_is_named_with_what_was_written(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "site" / "shop.md").mkdir(parents=True)  # a folder where a page goes
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 3
    err = capsys.readouterr().err
    assert (
        f"cannot write the docs to {project / 'site'}: shop.md: Is a directory; "
        "3 of 4 changed pages written, the others left as they were"
    ) in err
    assert "retry safe: yes" in err
    assert (project / "site" / "shop.html").is_file()


def run_cli_bounded(root: Path, *args: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """`run_cli` in a thread, failing the test (not hanging it) if the command never ends."""
    codes: list[int] = []
    runner = threading.Thread(
        target=lambda: codes.append(run_cli(root, *args, monkeypatch=monkeypatch)), daemon=True
    )
    runner.start()
    runner.join(timeout=60)  # only a hang takes this long
    assert not runner.is_alive(), f"drillbook {' '.join(args)} hung"
    return codes[0]


@pytest.mark.parametrize("page", ["index.html", "shop.md"])
def test_a_named_pipe_where_a_page_goes_exits_3_before_writing(
    project: Path, page: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Written into, a pipe waits for a reader, read for a writer: docs and --check hung.
    out = project / "site"
    out.mkdir()
    os.mkfifo(out / page)

    assert run_cli_bounded(project, "docs", "--check", monkeypatch=monkeypatch) == 1
    err = capsys.readouterr().err
    assert f"site/{page} is a named pipe, not a regular file: move it out of the way" in err
    assert run_cli_bounded(project, "docs", monkeypatch=monkeypatch) == 3
    err = capsys.readouterr().err
    assert f"cannot write the docs to {out / page}: it is a named pipe, not a regular file" in err
    assert "nothing was written" in err
    assert sorted(p.name for p in out.iterdir()) == [page]
    assert (out / page).is_fifo()


def test_service_filter(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(project, "docs", "--service", "shop", monkeypatch=monkeypatch) == 0
    assert sorted(p.name for p in (project / "site").iterdir()) == PAGES
    assert run_cli(project, "docs", "--service", "nope", monkeypatch=monkeypatch) == 2
    assert "no runbook for service 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(("first", "second"), [("index", "service-index"), ("Shop", "shop")])
def test_two_services_whose_pages_would_share_a_name_are_both_named(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    first: str,
    second: str,
) -> None:
    (project / "runbooks" / "shop.yaml").unlink()
    for n, service in enumerate((first, second)):
        (project / "runbooks" / f"{n}-{service}.yaml").write_text(
            f"drillbook: 1\nservice: {service}\nowner: team\n"
            "environments:\n  staging:\n    url: http://127.0.0.1:8999\n"
        )
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err
    assert f"(service {first!r}) and runbooks/" in err and f"(service {second!r}) would" in err
    assert "hint: rename one of the two services" in err


def test_an_invalid_runbook_exits_2_and_writes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "runbooks" / "broken.yaml").write_text("drillbook: 1\nservice: broken\n")
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 2
    assert "broken.yaml" in capsys.readouterr().err
    assert not (project / "site").exists()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_every_invalid_runbook_is_told_at_once(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], jobs: str
) -> None:
    monkeypatch.setenv("DRILLBOOK_JOBS", jobs)
    (project / "runbooks" / "a-broken.yaml").write_text("drillbook: 1\nservice: a-broken\n")
    (project / "runbooks" / "z-broken.yaml").write_text("drillbook: 1\nservice: 'z\n")
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err
    assert "runbooks/a-broken.yaml:" in err and "runbooks/z-broken.yaml:" in err
    assert "in 2 files; nothing ran" in err
    assert not (project / "site").exists()


# --- templates, text and secrets ---------------------------------------------------------------


def test_a_projects_template_overrides_the_default(project: Path) -> None:
    (project / "templates").mkdir()
    (project / "templates" / "docs-service.md.j2").write_text(
        "<!-- {{ marker }} -->\n# {{ service }} on call: page {{ escalation }}\n"
    )
    pages = {p.name: p.text for p in site(project)}
    assert pages["shop.md"] == (
        "<!-- generated by drillbook docs -->\n# shop on call: page #checkout-oncall (PagerDuty: "
        "Checkout)\n"
    )
    assert pages["shop.html"].startswith("<!DOCTYPE html>")  # the others stay the defaults


def test_template_looking_text_in_the_runbook_is_text(project: Path) -> None:
    runbook = project / "runbooks" / "shop.yaml"
    text = runbook.read_text().replace(
        "title: Pay with a saved card",
        'title: "Pay with {{ 7*7 }} cards <script>alert(1)</script>"',
    )
    runbook.write_text(text)
    pages = {p.name: p.text for p in site(project)}
    assert "Pay with {{ 7\\*7 }} cards \\<script>alert(1)\\</script>" in pages["shop.md"]
    assert "49" not in pages["shop.md"]
    assert "Pay with {{ 7*7 }} cards &lt;script&gt;alert(1)&lt;/script&gt;" in pages["shop.html"]
    assert "<script>alert" not in pages["shop.html"]
    assert "<script>alert" not in pages["index.html"]


def test_secrets_never_reach_the_pages(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runbook = project / "runbooks" / "shop.yaml"
    runbook.write_text(
        runbook.read_text().replace(
            "Stores a token of the card",
            f"Calls the gateway with {STAGING_TOKEN} and {PRODUCTION_TOKEN}; stores a token",
        )
    )
    monkeypatch.setenv("GATEWAY_API_KEY", "gw-key-5551234")
    write_run(
        project,
        "20261122T120000Z-5ec5ec",
        T0 + 99 * 3600,
        "deploy",
        "staging",
        "1.1.0",
        [("deployed", {"previous": "1.0.0", "by": "deploy", "note": "key gw-key-5551234"})],
        undo="drillbook rollback --env staging --to 1.0.0 # gw-key-5551234",
    )
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    for page in (project / "site").iterdir():
        text = page.read_text()
        for secret in (STAGING_TOKEN, PRODUCTION_TOKEN, "gw-key-5551234"):
            assert secret not in text, (page.name, secret)
    assert "Calls the gateway with *** and \\*\\*\\*;" in (project / "site" / "shop.md").read_text()


# --- runbook text in the Markdown pages ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("team-checkout", "team-checkout"),
        ("alice\n## owner heading", "alice ## owner heading"),  # one line: no heading starts
        ("<script>alert(1)</script>", r"\<script>alert(1)\</script>"),
        ("[page](javascript:alert(1))", r"\[page\](javascript:alert(1))"),
        ("rotate *.log and *.gz", r"rotate \*.log and \*.gz"),
        ("payment_id and __init__", r"payment_id and \_\_init\_\_"),  # `_` inside a word stays
        ("a token *** in between", "a token *** in between"),  # the mask, between words
        ("the answer is in `gateway.status`", "the answer is in `gateway.status`"),  # code stays
        ("an unclosed ` tick", r"an unclosed \` tick"),
        ("&amp; stays & as typed", r"\&amp; stays & as typed"),
        (r"C:\logs\ and \*", r"C:\logs\ and \\\*"),  # only a backslash that escapes
        ("Fix the build #", r"Fix the build \#"),  # a heading would drop closing #s
        ("#checkout-oncall", "#checkout-oncall"),  # not at the start of a line: a channel
        ("مرحبا 🚀 | ok", "مرحبا 🚀 | ok"),  # pipes are md_cell's, in tables only
    ],
)
def test_md_text_shows_runbook_text_as_typed(text: str, expected: str) -> None:
    assert md_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# Not a heading", r"\# Not a heading"),
        ("> not a quote", r"\> not a quote"),
        ("- not a list", r"\- not a list"),
        ("1. not a list", r"1\. not a list"),
        ("1.2.0 is fine", "1.2.0 is fine"),
        ("``` not a code block", r"\`\`\` not a code block"),
    ],
)
def test_md_text_that_starts_a_line_starts_no_block(text: str, expected: str) -> None:
    assert md_text(text, starts_line=True) == expected


def test_md_link_links_web_addresses_only() -> None:
    assert md_link("https://tracker.example.com/SHOP-42") == "<https://tracker.example.com/SHOP-42>"
    assert md_link("javascript:alert(1)") == "javascript:alert(1)"
    assert md_link("https://x.example/a b>c") == "https://x.example/a b>c"
    assert md_link("<script>x</script>") == r"\<script>x\</script>"


def test_markdown_in_runbook_text_does_not_change_the_pages_shape(project: Path) -> None:
    runbook = project / "runbooks" / "shop.yaml"
    text = runbook.read_text()
    for old, new in (
        ("owner: carol\n", 'owner: "carol | lead\\n## Injected heading"\n'),
        ("title: Pay with a saved card", 'title: "Pay | with `card` <img src=x onerror=alert(1)>"'),
        (
            "description: Checkout API and",
            'description: "# Checkout\\n<script>alert(2)</script>\\n'
            "[x](javascript:alert(3)) API and",
        ),
        ("links: [https://tracker.example.com/SHOP-42]", "links: ['javascript:alert(4)']"),
        ("notes: Not released yet.", 'notes: "---\\n1. not released yet"'),
    ):
        assert old in text, old
        text = text.replace(old, new)
    if "API and the basket pages" in text:
        text = text.replace("payment gateway.", 'payment gateway."', 1)
    runbook.write_text(text)
    pages = {p.name: p.text for p in site(project)}
    for name in ("shop.md", "index.md"):
        md = pages[name]
        unescaped = re.findall(r"(?<!\\)(<script>|<img|\]\(javascript:)", md)
        assert not unescaped, (name, unescaped)
        assert "Injected heading" in md and "\n## Injected" not in md, name
        # every table row keeps its header's columns: a runbook's pipe is escaped in a cell
        columns = None
        for line in md.splitlines():
            if not line.startswith("|"):
                columns = None
                continue
            pipes = len(re.findall(r"(?<!\\)\|", line))
            columns = columns or pipes
            assert pipes == columns, (name, line)
    md = pages["shop.md"]
    assert "\n\\# Checkout \\<script>alert(2)\\</script> \\[x\\](javascript:alert(3)) API" in md
    assert "#### saved-cards: Pay | with `card` \\<img src=x onerror=alert(1)>" in md
    assert "- **Owner:** carol | lead ## Injected heading" in md
    assert "- **Link:** javascript:alert(4)" in md
    assert "\n\\---\n" not in md and "\n\\--- 1. not released yet\n" in md
    assert "| [Pay \\| with `card` \\<img src=x onerror=alert(1)>](shop.md#" in pages["index.md"]


def test_parts_whose_ids_would_read_the_same_get_ids_of_their_own(project: Path) -> None:
    runbook = project / "runbooks" / "shop.yaml"
    extra = "".join(
        f"""
  - version: {version}
    changes:
"""
        + "".join(
            f"""      - id: {change}
        title: {change} of {version}
        owner: erin
        expected: ok
        rollback: Deploy 1.2.0 again.
"""
            for change in changes
        )
        for version, changes in (("1.4.0-rc.1", ["Audit", "audit"]), ("1.4.0-rc-1", ["x"]))
    )
    runbook.write_text(runbook.read_text() + extra)
    write_run(
        project,
        "20261123T090000Z-ab0001",
        T0 + 120 * 3600,
        "deploy",
        "staging",
        "1.4.0-rc.1",
        [("deployed", {"previous": "1.2.0", "by": "deploy"})],
    )
    html = {p.name: p.text for p in site(project)}["shop.html"]
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    # staging runs 1.4.0-rc.1: its link lands on that release, not on 1.4.0-rc-1
    running = re.search(r"<dt>staging runs</dt><dd><a href=\"#([^\"]+)\">1.4.0-rc.1<", html)
    assert running is not None
    section = html.split(f'id="{running.group(1)}"', 1)[1]
    assert section.split("</h3>", 1)[0].endswith("1.4.0-rc.1")


def test_control_characters_in_runbook_text_are_shown_as_escapes(project: Path) -> None:
    runbook = project / "runbooks" / "shop.yaml"
    text = runbook.read_text()
    # YAML's double quotes: an OSC escape sequence, a bell, a bidi override, a carriage return;
    # and a secret split by an escape sequence
    owner = 'owner: "carol\\e]0;PWNED\\a \\u202Elorac\\r"\n'
    secret = f"{STAGING_TOKEN[:8]}\\e[0m{STAGING_TOKEN[8:]}"
    text = text.replace("owner: carol\n", owner)
    text = re.sub("description: Stores .*", lambda _: f'description: "Sends {secret} on"', text)
    runbook.write_text(text)
    pages = {p.name: p.text for p in site(project)}
    for name, page in pages.items():
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", page), name
        assert STAGING_TOKEN[8:] not in page and STAGING_TOKEN[:8] not in page, name
    assert "<dt>Owner</dt><dd>carol\\x1b]0;PWNED\\x07 \\u202elorac\\r</dd>" in pages["shop.html"]
    assert "- **Owner:** carol\\x1b\\]0;PWNED\\x07 \\u202elorac\\r\n" in pages["shop.md"]
    assert "- **What:** Sends *** on" in pages["shop.md"]


def test_a_check_command_that_holds_backticks_reads_whole(project: Path) -> None:
    runbook = project / "runbooks" / "shop.yaml"
    text = runbook.read_text()
    old = "run: [python, manage.py, flags, get, saved-cards]"
    assert old in text
    runbook.write_text(text.replace(old, "run: [sh, -c, 'test \"`cat flag`\" = off']"))
    md = {p.name: p.text for p in site(project)}["shop.md"]
    assert "- ``sh -c 'test \"`cat flag`\" = off'`` exits 0 and prints 'off'\n" in md


# --- the rollback target -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "tags", "expected"),
    [
        ("1.2.0", None, "1.1.0"),  # no git: the runbook's releases stand in
        ("1.0.0", None, None),
        ("1.3.0", ["1.0.0", "1.1.0"], "1.1.0"),  # 1.2.0 was never tagged: it never shipped
        ("1.3.0", [], "1.2.0"),  # no tag yet: the runbook's releases
        ("1.3.0", ["1.1.0", "1.3.0-rc.1"], "1.1.0"),  # a final release skips pre-releases
    ],
)
def test_previous_version_comes_from_tags_then_the_runbook(
    project: Path, version: str, tags: list[str] | None, expected: str | None
) -> None:
    assert previous_version(loaded(project).runbook, version, tags) == expected


def test_a_rehearsal_journal_of_other_types_reads_as_not_known(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a newer drillbook or a hand edit might leave it: a time in milliseconds, NaN and
    # Infinity, a list where an outcome goes, a number where a run id and checks go.
    run = "20261123T090000Z-0dd000"
    events = [
        {"event": "run_started", "action": "rehearse", "run_action": "rehearse"},
        {
            "event": "rehearsal_finished",
            "ts": 1_764_000_000_000,
            "run": 7,
            "outcome": ["ok"],
            "restore_ms": float("inf"),
            "total_ms": float("nan"),
            "failed_checks": 3,
            "runbook_sha256": ["x"],
        },
        {"event": "run_finished", "outcome": "ok", "exit": 0},
    ]
    lines = [
        json.dumps(
            {
                "ts": "2026-11-23T09:00:00Z",
                "run": run,
                "seq": seq,
                "service": SERVICE,
                "env": "staging",
                "version": "1.3.0",
                **event,
            }
        )
        for seq, event in enumerate(events, 1)
    ]
    (project / ".drillbook" / "journal" / f"{run}.jsonl").write_text("\n".join(lines) + "\n")
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    md = (project / "site" / "shop.md").read_text()
    assert "| ? | 1.3.0 | - | unknown | - | - | - |" in md
    assert "The last rehearsal of 1.3.0 ended unknown. Fix what it found" in md


def test_a_deploy_whose_version_is_not_text_is_not_called_no_deploy(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_run(
        project,
        "20261123T090000Z-0dd001",
        T0 + 120 * 3600,
        "deploy",
        "production",
        "1.2.0",
        [("deployed", {"version": {"name": "1.2.0", "build": 7}, "by": "deploy"})],
    )
    assert run_cli(project, "docs", monkeypatch=monkeypatch) == 0
    md = (project / "site" / "shop.md").read_text()
    assert (
        "| production | https://shop.example.com | unknown: the newest deploy in the journal "
        "names no version | - |"
    ) in md
    assert "| staging | http://127.0.0.1:8282 | [1.1.0](#release-1-1-0) |" in md


def test_right_now_of_the_first_release_says_how_to_undo_it_by_hand(project: Path) -> None:
    write_run(
        project,
        "20261122T120000Z-999999",
        T0 + 99 * 3600,
        "deploy",
        "production",
        "1.0.0",
        [("deployed", {"previous": "1.1.0", "by": "deploy"})],
    )
    pages = {p.name: p.text for p in site(project)}
    how = (
        "no earlier version to go back to (first release): First release; stop the service, "
        "no payment is lost."
    )
    row = "| production | https://shop.example.com | [1.0.0](#release-1-0-0) |"
    assert f"{row} {how} |" in pages["shop.md"]
    assert f'<td data-label="Roll back with">{how}</td>' in pages["shop.html"]


def test_rehearsals_of_other_services_do_not_count(project: Path) -> None:
    lb = loaded(project)
    facts = gather(project)
    other = [{**r, "service": "other"} for r in facts.rehearsals]
    ctx = service_context(lb, dataclasses.replace(facts, rehearsals=other), project / "site")
    assert ctx["chart"] is None
    assert ctx["rehearsals"] == []
    assert OLD_SHA not in str(ctx)


def test_right_now_of_a_run_to_abandon_shows_its_commands_as_code(project: Path) -> None:
    # A release interrupted in its checks, not closed yet: abandon it, then roll back.
    write_run(
        project,
        "20261122T100000Z-ffffff",
        T0 + 97 * 3600,
        "release",
        "staging",
        "1.2.0",
        [
            ("deployed", {"version": "1.2.0", "previous": "1.1.0", "by": "release"}),
            ("step_started", {"step": "integration", "kind": "checks"}),
        ],
        outcome="interrupted",
        previous="1.1.0",
    )
    pages = {p.name: p.text for p in site(project)}
    abandon = "drillbook abandon 20261122T100000Z-ffffff"
    rollback = "drillbook rollback --env staging --to 1.1.0"
    assert f"<code>{abandon}</code>, then <code>{rollback}</code></td>" in pages["shop.html"]
    assert f"| `{abandon}`, then `{rollback}` |" in pages["shop.md"]


def test_right_now_sends_a_person_to_check_a_rollback_cut_short_after_its_redeploy(
    project: Path,
) -> None:
    # After the story: 1.2.0 released again, Ctrl-C in the rollback's checks, then abandoned.
    write_run(
        project,
        "20261122T100000Z-ffffff",
        T0 + 97 * 3600,
        "release",
        "staging",
        "1.2.0",
        [
            ("deployed", {"version": "1.2.0", "previous": "1.1.0", "by": "release"}),
            ("rollback_started", {"from_version": "1.2.0", "to_version": "1.1.0"}),
            ("deployed", {"version": "1.1.0", "previous": "1.2.0", "by": "rollback"}),
            ("step_started", {"step": "rollback-checks", "kind": "checks"}),
            ("run_closed", {"how": "abandoned"}),
        ],
        outcome="interrupted",
        previous="1.1.0",
    )

    ctx = service_context(loaded(project), gather(project), project / "site")
    staging = next(e for e in ctx["environments"] if e["name"] == "staging")

    # The journal's last `deployed` says 1.1.0, unproven: not "1.1.0, roll back to 1.0.0".
    assert staging["current"] == (
        "unknown: release 1.2.0 interrupted, abandoned (run 20261122T100000Z-ffffff)"
    )
    assert staging["rollback"].startswith("a person must check: the rollback to 1.1.0")
    assert not staging["rollback_is_command"]
