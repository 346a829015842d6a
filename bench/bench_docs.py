"""`drillbook docs` for many runbooks against rendering one jinja2 template as many times.

    python bench/bench_docs.py [--quick] [--no-scale]

Both sides are whole processes, alternated:

- subject: `drillbook docs` in a project of N generated runbooks (`gen_runbooks.py`): load and
  validate every runbook, gather tags and journals, render a Markdown and an HTML page per
  service and the index, and write them atomically; the out folder is removed before each run
  (untimed), so every page is written;
- baseline: one process that imports jinja2 and renders `docs-service.html.j2` (the largest
  page) N times from one service's context, with a plain `jinja2.Environment`, writing nothing;
- also reported: `drillbook check` of the same runbooks, the loading `docs` cannot skip.

The scale series times both at 10, 100, 1,000 and 10,000 runbooks and fits a line.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import harness
from gen_runbooks import generate
from harness import Goal, Result, Samples, Scale, Settings, process

GOAL = Goal("<=", 1.5)
SIZES = (10, 100, 1000, 10_000)
TEMPLATE = "docs-service.html.j2"
BASELINE_NAME = "jinja2: one template rendered N times"
CHECK_NAME = "drillbook check of the same runbooks"

BASELINE = """
import json, sys
from jinja2 import Environment, FileSystemLoader, StrictUndefined
templates, context_file, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
env = Environment(
    loader=FileSystemLoader(templates), undefined=StrictUndefined, autoescape=True,
    keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
)
with open(context_file, encoding="utf-8") as f:
    context = json.load(f)
template = env.get_template(sys.argv[4])
for _ in range(n):
    template.render(**context)
"""


def service_context_file(project: Path, out: Path) -> Path:
    """One service's page context, as `docs` builds it, saved as JSON for the baseline."""
    from drillbook.docs import MARKER, page_stem
    from drillbook.docs_service import gather, service_context
    from drillbook.runbook import load_runbook

    loaded = load_runbook(sorted((project / "runbooks").glob("*.yaml"))[0], root=project)
    ctx = service_context(loaded, gather(project, [loaded]), project / "site")
    ctx = {**ctx, "marker": MARKER, "page": page_stem(loaded.runbook.service)}
    path = out / "context.json"
    path.write_text(json.dumps(ctx), encoding="utf-8")
    return path


def sides(project: Path, context: Path) -> dict[str, harness.Runner]:
    """`drillbook docs` in `project` and the jinja2 floor for as many runbooks."""
    from drillbook.resources import resource

    n = len(list((project / "runbooks").glob("*.yaml")))
    site = project / "site"
    return {
        "drillbook docs": process(
            [harness.drillbook_script(), "docs"],
            cwd=project,
            before=lambda: shutil.rmtree(site, ignore_errors=True),
        ),
        BASELINE_NAME: process(
            [sys.executable, "-c", BASELINE, resource("templates"), context, n, TEMPLATE],
            cwd=project,
        ),
    }


def time_docs(
    project: Path, context: Path, runs: int, *, with_check: bool = False
) -> tuple[Samples, Samples, Samples | None]:
    """Subject and baseline samples for the project; `drillbook check` of it too if asked."""
    more = sides(project, context)
    if with_check:
        more[CHECK_NAME] = process(
            [harness.drillbook_script(), "check", project / "runbooks"], cwd=project
        )
    got = harness.measure(more, runs=runs)
    return got["drillbook docs"], got[BASELINE_NAME], got.get(CHECK_NAME)


def figures(settings: Settings) -> tuple[list[Result], list[Scale]]:
    """The docs figure at 1,000 runbooks, and the scale series in full mode."""
    print("docs", flush=True)
    n = settings.pick(1000, 100)
    with tempfile.TemporaryDirectory(prefix="drillbook-bench-docs-") as tmp:
        root = Path(tmp)
        project = generate(root / str(n), n).parent
        context = service_context_file(project, root)
        subject, baseline, check = time_docs(project, context, settings.runs(9, 3), with_check=True)
        result = Result(
            f"`docs` for {n:,} runbooks, whole process",
            subject,
            baseline,
            goal=GOAL,
            per=n,
            per_unit="runbook",
            note=f"{2 * n + 2} pages written, each fsynced (write_atomic)",
        )
        assert check is not None
        # What docs adds to loading the runbooks, which it cannot skip: the loading alone
        # (`check`) is already over the goal's 1.5x of the one-template baseline.
        beyond = Result(
            f"`docs` for {n:,} runbooks, against `check` of them",
            subject,
            check,
            per=n,
            per_unit="runbook",
        )
        harness.report(result)
        harness.report(beyond)
        scales = []
        if settings.scale and not settings.quick:
            subjects, baselines = [], []
            for size in SIZES:
                if size == n:
                    s, b = subject, baseline
                else:
                    folder = generate(root / str(size), size).parent
                    s, b, _ = time_docs(folder, context, 3 if size >= 10_000 else 5)
                    shutil.rmtree(folder, ignore_errors=True)
                print(
                    f"    scale {size:>6,} runbooks: docs {harness.seconds(s.median)}, "
                    f"jinja2 {harness.seconds(b.median)}",
                    flush=True,
                )
                subjects.append(s)
                baselines.append(b)
            scales.append(
                Scale("docs", "runbooks", list(SIZES), subjects, baselines, BASELINE_NAME)
            )
    return [result, beyond], scales


if __name__ == "__main__":
    sys.exit(harness.standalone("docs", figures))
