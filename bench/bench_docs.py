"""`drillbook docs` for many runbooks against rendering one jinja2 template as many times.

    python bench/bench_docs.py [--quick] [--no-scale]

Both sides are whole processes, alternated:

- subject: `drillbook docs` in a project of N generated runbooks (`gen_runbooks.py`): load and
  validate every runbook, gather tags and journals, render a Markdown and an HTML page per
  service and the index, and write them atomically; the out folder is removed before each run
  (untimed), so every page is written. The runbooks are read and rendered by forked workers,
  one a CPU (`parallel`); the same in one process (`DRILLBOOK_JOBS=1`) is reported too;
- baseline: one process that imports jinja2 and renders `docs-service.html.j2` (the largest
  page) N times from one service's context, with a plain `jinja2.Environment`, writing nothing;
- also reported: `drillbook check` of the same runbooks, the loading `docs` cannot skip; and
  the same work done plainly: one process that parses every runbook with libyaml, renders
  both of its pages (Markdown and HTML) with a plain jinja2 `Environment` from one saved
  context, and writes them, without validation, masking, sandbox or atomic writes. It is one
  process, so it is compared with `docs` in one process;
- in full mode, the same `docs` in a copy of the project with 300 release journals, against
  the project with none: what reading the journal costs.

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
PLAIN_NAME = "parse, render both pages, write: done plainly"
ONE_NAME = "drillbook docs, DRILLBOOK_JOBS=1"
JOURNALS = 300
JOURNALS_NAME = f"drillbook docs, {JOURNALS} journals"

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


PLAIN = """
import json, shutil, sys, yaml
from pathlib import Path
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from drillbook.render import md_cell, md_code, md_link, md_text
templates, context_file, project = sys.argv[1], sys.argv[2], Path(sys.argv[3])
out = project / "plain-site"
shutil.rmtree(out, ignore_errors=True)
out.mkdir()
with open(context_file, encoding="utf-8") as f:
    context = json.load(f)
pages = []
for autoescape, suffix in ((False, "md"), (True, "html")):
    env = Environment(
        loader=FileSystemLoader(templates), undefined=StrictUndefined, autoescape=autoescape,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(
        md_cell=md_cell, md_code=md_code, md_text=md_text, md_link=md_link,
        duration=lambda s: f"{s:g}s",
    )
    pages.append((suffix, env.get_template(f"docs-service.{suffix}.j2")))
for path in sorted((project / "runbooks").glob("*.yaml")):
    with path.open("rb") as f:
        yaml.load(f, Loader=yaml.CSafeLoader)
    for suffix, template in pages:
        (out / f"{path.stem}.{suffix}").write_text(template.render(**context), encoding="utf-8")
"""


def with_journals(project: Path, copy: Path, runs: int) -> Path:
    """`project` copied to `copy`, with `runs` release journals of its services (seeded).

    Each run deploys one service, picked at random, to staging, so most services have none:
    the case where reading the current versions one service at a time read every journal.
    """
    import random
    import re

    from drillbook.journal import Journal

    shutil.copytree(project, copy)
    services = [
        m.group(1)
        for path in sorted((copy / "runbooks").glob("*.yaml"))
        if (m := re.search(r"(?m)^service: *(\S+)", path.read_text(encoding="utf-8")))
    ]
    rng = random.Random(11)
    start = 1_780_000_000.0
    for i in range(runs):
        service = rng.choice(services)
        ticks = iter(start + 60 * i + k for k in range(10))
        run_id = f"20260601T{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}Z-{i:06x}"
        base = {"service": service, "env": "staging", "version": f"1.{i}.0"}
        with Journal.open(copy, run_id, clock=lambda t=ticks: next(t), sync=False) as journal:
            journal.write("run_started", action="release", changes_world=True, **base)
            journal.write("deployed", **base)
            journal.write("run_finished", outcome="ok", exit=0, duration_ms=900, **base)
    return copy


def service_context_file(project: Path, out: Path) -> Path:
    """One service's page context, as `docs` builds it, saved as JSON for the baseline."""
    from drillbook.docs import MARKER, page_stem
    from drillbook.docs_service import gather, service_context
    from drillbook.runbook import load_runbook

    loaded = load_runbook(sorted((project / "runbooks").glob("*.yaml"))[0], root=project)
    ctx = service_context(loaded, gather(project), project / "site")
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
) -> tuple[Samples, Samples, dict[str, Samples]]:
    """Subject and baseline samples; with `with_check`, check, the plain work and one process."""
    from drillbook.resources import resource

    more = sides(project, context)
    if with_check:
        site = project / "site"
        more[ONE_NAME] = process(
            [harness.drillbook_script(), "docs"],
            cwd=project,
            env={"DRILLBOOK_JOBS": "1"},
            before=lambda: shutil.rmtree(site, ignore_errors=True),
        )
        more[CHECK_NAME] = process(
            [harness.drillbook_script(), "check", project / "runbooks"], cwd=project
        )
        more[PLAIN_NAME] = process(
            [sys.executable, "-c", PLAIN, resource("templates"), context, project], cwd=project
        )
    got = harness.measure(more, runs=runs)
    return got.pop("drillbook docs"), got.pop(BASELINE_NAME), got


def figures(settings: Settings) -> tuple[list[Result], list[Scale]]:
    """The docs figure at 1,000 runbooks, and the scale series in full mode."""
    print("docs", flush=True)
    n = settings.pick(1000, 100)
    with tempfile.TemporaryDirectory(prefix="drillbook-bench-docs-") as tmp:
        root = Path(tmp)
        project = generate(root / str(n), n).parent
        context = service_context_file(project, root)
        subject, baseline, more = time_docs(project, context, settings.runs(9, 3), with_check=True)
        check, plain, one = more[CHECK_NAME], more[PLAIN_NAME], more[ONE_NAME]
        results = [
            Result(
                f"`docs` for {n:,} runbooks, whole process",
                subject,
                baseline,
                goal=GOAL,
                per=n,
                per_unit="runbook",
                note=f"{2 * n + 2} pages written; workers on every CPU",
            ),
            Result(
                f"`docs` for {n:,} runbooks in one process (`DRILLBOOK_JOBS=1`)",
                one,
                baseline,
                per=n,
                per_unit="runbook",
            ),
            Result(f"`docs` for {n:,} runbooks, workers against one process", subject, one),
            # What docs adds to loading the runbooks, which it cannot skip: the loading alone
            # (`check`) is already over the goal's 1.5x of the one-template baseline.
            Result(
                f"`docs` for {n:,} runbooks, against `check` of them",
                subject,
                check,
                per=n,
                per_unit="runbook",
            ),
            # The same reading, rendering and writing, without what drillbook adds to each;
            # one process against one process.
            Result(
                f"`docs` for {n:,} runbooks in one process, against the same work done plainly",
                one,
                plain,
                per=n,
                per_unit="runbook",
            ),
        ]
        if not settings.quick:
            # The journal's part: the same runbooks in a project with 300 journals.
            journaled = with_journals(project, root / f"{n}-journals", JOURNALS)
            site = journaled / "site"
            got = harness.measure(
                {
                    JOURNALS_NAME: process(
                        [harness.drillbook_script(), "docs"],
                        cwd=journaled,
                        before=lambda: shutil.rmtree(site, ignore_errors=True),
                    ),
                    "drillbook docs": sides(project, context)["drillbook docs"],
                },
                runs=5,
            )
            results.append(
                Result(
                    f"`docs` for {n:,} runbooks with {JOURNALS} journals, against none",
                    got[JOURNALS_NAME],
                    got["drillbook docs"],
                    note="one release journal each, of a random service",
                )
            )
        for result in results:
            harness.report(result)
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
    return results, scales


if __name__ == "__main__":
    sys.exit(harness.standalone("docs", figures))
