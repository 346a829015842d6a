"""A whole release of no-op gates, deploy and checks, against `drillbook --help`.

    python bench/bench_release.py [--quick] [--no-scale]

The fixture is a project in a temporary git repository whose gates and deploy are `true` and
whose checks (two expected and one rollback check per change) hit a tiny HTTP server on
127.0.0.1. `drillbook release --version 1.0.0` is timed as a whole process: load the runbook,
preflight (git probes), lint, unit, verify-config, deploy, checks, tag, rollback note, and the
journal of it all. Before each run, untimed, the tag, the note and the journal are removed so
every run releases afresh. The baseline of the goal is `drillbook --help`: the start-up every
command pays. Also reported, against the same start-up:

- importing the libraries a release needs (pydantic's `BaseModel` included: `import pydantic`
  alone imports almost nothing, its names load on first use), with the interpreter settings of
  drillbook's entry (`drillbook/__main__.py`) so that it is a floor;
- `plain_release.py`: the same work written as a plain script with the same libraries (no
  masking, lock, signals, plan or process groups); the release against it is what drillbook's
  orchestration costs.

The scale series releases 1, 10 and 100 changes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import harness
from harness import Goal, Result, Samples, Scale, Settings, process

VERSION = "1.0.0"
LIBRARIES = "import invoke, yaml, jinja2.sandbox, requests; from pydantic import BaseModel"
# With the interpreter settings of drillbook's entry (drillbook/__main__.py), as every side has.
IMPORTS = f"import gc; gc.set_threshold(50_000, 20, 20); {LIBRARIES}; gc.freeze()"
IMPORTS_NAME = f'python -c "{LIBRARIES}"'
PLAIN = Path(__file__).resolve().parent / "plain_release.py"
PLAIN_NAME = "plain_release.py: the same work, a plain script"
COMMANDS_NAME = "drillbook release, 1 change, command checks"

SIZES = (1, 10, 100)

HEAD = """\
drillbook: 1
service: bench-shop
owner: team-bench
environments:
  staging:
    url: {url}
    config: config/staging.env
config:
  required: [LOG_LEVEL, SECRET_KEY]
  secrets: [SECRET_KEY]
  rules:
    LOG_LEVEL: {{one_of: [debug, info, warning, error]}}
gates:
  lint: [true]
  unit: [true]
deploy:
  run: [true, --env, "{{env}}", --version, "{{version}}"]
  timeout: 10s
checks:
  healthy:
    get: /health
    expect: {{status: 200, json: {{status: ok}}}}
releases:
  - version: {version}
    changes:
"""

CHANGE = """\
      - id: change-{i}
        title: Change number {i} of the release
        owner: owner-{owner}
        expected:
          summary: The service answers and says it is healthy.
          checks:
            - healthy
            - get: /version
              expect: {{status: 200}}
        rollback:
          summary: Deploy the previous version again.
          retry_safe: true
          checks:
            - healthy
"""


def git(folder: Path, *args: str) -> None:
    """Run git in the fixture, quietly; fail loudly."""
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)


def make_project(folder: Path, url: str, changes: int, *, http: bool = True) -> Path:
    """A committed project releasing `changes` changes against the server at `url`.

    `http=False`: every check is the command `true` instead of a GET, so no HTTP is done.
    """
    (folder / "runbooks").mkdir(parents=True)
    (folder / "config").mkdir()
    text = HEAD.format(url=url, version=VERSION)
    text += "".join(CHANGE.format(i=i, owner=i % 7) for i in range(changes))
    if not http:
        health = "get: /health\n    expect: {status: 200, json: {status: ok}}"
        text = text.replace(health, "run: [true]")
        text = text.replace("- get: /version\n              expect: {status: 200}", "- run: [true]")
    (folder / "runbooks" / "shop.yaml").write_text(text)
    (folder / "config" / "staging.env").write_text("LOG_LEVEL=info\nSECRET_KEY=s3cr3t-value-42\n")
    git(folder, "init", "-q", "-b", "main")
    git(folder, "config", "user.name", "Bench")
    git(folder, "config", "user.email", "bench@example.com")
    git(folder, "config", "commit.gpgsign", "false")
    git(folder, "config", "tag.gpgsign", "false")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "the project")
    return folder


def reset(folder: Path) -> None:
    """Undo what a release wrote, so the next run releases afresh."""
    subprocess.run(
        ["git", "tag", "-d", f"v{VERSION}"], cwd=folder, capture_output=True, check=False
    )
    for name in ("notes", ".drillbook", "reports"):
        shutil.rmtree(folder / name, ignore_errors=True)


def release_side(folder: Path) -> harness.Runner:
    """`drillbook release` in the fixture, reset before each run."""
    argv = [harness.drillbook_script(), "release", "--version", VERSION]
    return process(argv, cwd=folder, before=lambda: reset(folder))


def plain_side(folder: Path) -> harness.Runner:
    """The same release as a plain script, reset before each run."""
    argv = [sys.executable, str(PLAIN), str(folder), VERSION]
    return process(argv, cwd=folder, before=lambda: reset(folder))


def help_side(folder: Path) -> harness.Runner:
    """`drillbook --help`, the start-up floor."""
    return process([harness.drillbook_script(), "--help"], cwd=folder)


def figures(settings: Settings) -> tuple[list[Result], list[Scale]]:
    """The release figure (one change) and, in full mode, 1, 10 and 100 changes."""
    print("release (no-op gates, deploy and checks)", flush=True)
    results: list[Result] = []
    scales: list[Scale] = []
    with (
        harness.http_server() as url,
        tempfile.TemporaryDirectory(prefix="drillbook-bench-release-") as tmp,
    ):
        root = Path(tmp)
        one = make_project(root / "1", url, 1)
        no_http = make_project(root / "1-commands", url, 1, http=False)
        samples = harness.measure(
            {
                "drillbook release, 1 change": release_side(one),
                COMMANDS_NAME: release_side(no_http),
                "drillbook --help": help_side(one),
                IMPORTS_NAME: process([sys.executable, "-c", IMPORTS], cwd=one),
                PLAIN_NAME: plain_side(one),
            },
            runs=settings.runs(15, 3),
        )
        result = Result(
            "whole release of no-op gates, deploy, checks (1 change)",
            samples["drillbook release, 1 change"],
            samples["drillbook --help"],
            goal=Goal("<=", 1.6),
            note="tag, rollback note and journal included",
        )
        # The floor a release cannot go under: the libraries it needs (validation, templates,
        # HTTP), imported and nothing else, against the same start-up.
        floor = Result(
            "floor: importing the libraries a release needs",
            samples[IMPORTS_NAME],
            samples["drillbook --help"],
        )
        # The same work by hand, against the same start-up, and the release against it.
        plain = Result(
            "floor: the same work as a plain script",
            samples[PLAIN_NAME],
            samples["drillbook --help"],
        )
        overhead = Result(
            "whole release against the same work as a plain script",
            samples["drillbook release, 1 change"],
            samples[PLAIN_NAME],
            note="what drillbook's orchestration costs",
        )
        # The same release whose checks are commands: no HTTP, so requests is never imported.
        commands = Result(
            "whole release, command checks instead of HTTP (1 change)",
            samples[COMMANDS_NAME],
            samples["drillbook --help"],
            goal=Goal("<=", 1.6),
            note="requests is not imported",
        )
        for item in (result, commands, floor, plain, overhead):
            harness.report(item)
        results += [result, commands, floor, plain, overhead]
        if settings.scale and not settings.quick:
            subjects: list[Samples] = []
            bases: list[Samples] = []
            for size in SIZES:
                if size == 1:
                    subject, base = result.subject, result.baseline
                else:
                    project = make_project(root / str(size), url, size)
                    name = f"drillbook release, {size} changes"
                    got = harness.measure(
                        {name: release_side(project), "drillbook --help": help_side(project)},
                        runs=7,
                    )
                    subject, base = got[name], got["drillbook --help"]
                print(
                    f"    scale {size:>3} changes: release {harness.seconds(subject.median)}, "
                    f"--help {harness.seconds(base.median)}",
                    flush=True,
                )
                subjects.append(subject)
                bases.append(base)
            scales.append(
                Scale("release", "changes", list(SIZES), subjects, bases, "drillbook --help")
            )
    return results, scales


if __name__ == "__main__":
    sys.exit(harness.standalone("release", figures))
