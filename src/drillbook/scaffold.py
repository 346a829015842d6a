"""`drillbook init`: what a project needs to start using drillbook, planned before it is written.

A project gets four things: `runbooks/<service>.yaml` (a starter runbook that passes
`drillbook check` and teaches the format in its comments), `runbooks/runbook-v1.schema.json`
(the JSON Schema, next to the runbooks, so the `# yaml-language-server: $schema=...` line of
every runbook there is a plain relative name and editors validate as you type), a `tasks.py`
that puts drillbook's tasks beside the project's own, and a `.gitignore` entry for
`.drillbook/`. Nothing that exists is overwritten unless `force` is given; a `.gitignore` only
ever gets the missing line appended, and a project's own `tasks.py` only ever gets the three
lines that add drillbook's tasks (with `force`; without it they are shown). A runbook of the
same name that differs stops `init` before it writes anything.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from drillbook.files import write_atomic

#: Where the schema goes, relative to the project root; runbooks point at it by file name.
SCHEMA_PATH = "runbooks/runbook-v1.schema.json"
SCHEMA_LINE = "# yaml-language-server: $schema=runbook-v1.schema.json"
IGNORE_LINE = ".drillbook/"
IGNORE_COMMENT = "# drillbook's journal and locks"
#: What an existing `tasks.py` needs at its end to expose drillbook's tasks beside its own.
TASKS_LINES = (
    "# drillbook's release tasks beside this file's own (yours win on a name clash)",
    "from drillbook.tasks import project_namespace",
    "",  # isort's blank line after an import: the project's own linter passes it
    "ns = project_namespace(__name__)",
)
_IGNORE_FORMS = {".drillbook", ".drillbook/", "/.drillbook", "/.drillbook/", ".drillbook/*"}

Action = Literal["write", "overwrite", "append", "unchanged", "keep"]


@dataclass(frozen=True)
class FileAction:
    """What `init` does to one file: the path (relative to the root), the action and why."""

    path: str
    action: Action
    text: str = ""  # the whole new content, or the lines to append
    reason: str = ""

    @property
    def changes(self) -> bool:
        """Whether the action writes anything."""
        return self.action in ("write", "overwrite", "append")


@dataclass(frozen=True)
class InitPlan:
    """Every file `init` looks at, in the order it writes them."""

    root: Path
    service: str
    actions: tuple[FileAction, ...]

    @property
    def kept(self) -> list[FileAction]:
        """Files that exist, differ from what init would write, and stay as they are."""
        return [a for a in self.actions if a.action == "keep"]


def folder_name(root: Path) -> str:
    """The name of the project's folder as its bytes say in UTF-8, whatever the locale.

    Under a locale that is not UTF-8 (LC_ALL=C with PYTHONUTF8=0), Python reads `Café` as
    bytes it cannot decode, and the service named after it lost its letters (`caf`).
    """
    return os.fsencode(root.resolve().name).decode("utf-8", errors="replace")


def service_name(folder_name: str) -> str:
    """A runbook service name from a folder name: `My Shop.api` -> `my-shop-api`."""
    ascii_name = unicodedata.normalize("NFKD", folder_name).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9_-]+", "-", ascii_name.lower())
    name = re.sub(r"-{2,}", "-", name).strip("-_")[:100].rstrip("-_")
    return name or "my-service"


def starter_runbook(service: str) -> str:
    """A runbook that passes `drillbook check` and says, in comments, what each part is for."""
    return _RUNBOOK.replace("__SERVICE__", service).replace("__SCHEMA_LINE__", SCHEMA_LINE)


def schema_text() -> str:
    """The JSON Schema of the runbook format, as `drillbook schema` prints it."""
    from drillbook.model import json_schema

    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


def _file_action(root: Path, rel: str, text: str, force: bool, reason: str) -> FileAction:
    path = root / rel
    if not path.exists():
        return FileAction(rel, "write", text)
    if path.is_file() and path.read_text(encoding="utf-8", errors="replace") == text:
        return FileAction(rel, "unchanged", reason="already as init writes it")
    if force and path.is_file():
        return FileAction(rel, "overwrite", text, reason="--force")
    return FileAction(rel, "keep", reason=reason)


def _read_existing(root: Path, rel: str) -> str:
    """The text of a file init would add lines to; refused when it is not a readable file.

    init plans every file before it writes one: a refusal here leaves the project as it was.
    """
    from drillbook.errors import PreconditionFailed, UsageError

    path = root / rel
    if not path.is_file():
        msg = f"{rel} exists and is not a file, expected one to add lines to; nothing was written"
        raise UsageError(msg, hint=f"move {path} out of the way, then run init again")
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        msg = f"cannot read {rel}: {exc.strerror or exc}; nothing was written"
        raise PreconditionFailed(msg, hint=f"fix {path}, then run init again") from None


#: Where a project keeps its invoke tasks as a package rather than one file.
TASKS_PACKAGE = "tasks/__init__.py"


def _tasks_action(root: Path, force: bool) -> FileAction:
    rel = "tasks.py"
    if not (root / rel).exists() and (root / "tasks").is_dir():
        # The project's tasks are a package: a tasks.py beside it would be what invoke loads,
        # and every task of the package would be gone from `invoke --list`.
        rel = TASKS_PACKAGE
        if not (root / rel).exists():
            return FileAction(
                rel, "keep", reason="tasks/ holds the project's tasks; add the lines below"
            )
    path = root / rel
    if not path.exists():
        return FileAction(rel, "write", _TASKS)
    current = _read_existing(root, rel)
    if "drillbook.tasks" in current:
        return FileAction(rel, "unchanged", reason="it already imports drillbook.tasks")
    if not force:
        return FileAction(rel, "keep", reason="it is the project's own; add the lines below")
    # Even with --force the project's own tasks stay: the lines are added at the end.
    lead = "" if not current or current.endswith("\n") else "\n"
    return FileAction(rel, "append", lead + "\n" + "\n".join(TASKS_LINES) + "\n", reason="--force")


def _ignore_action(root: Path) -> FileAction:
    path = root / ".gitignore"
    if not path.exists():
        return FileAction(".gitignore", "write", f"{IGNORE_COMMENT}\n{IGNORE_LINE}\n")
    current = _read_existing(root, ".gitignore")
    if any(line.strip() in _IGNORE_FORMS for line in current.splitlines()):
        return FileAction(".gitignore", "unchanged", reason=f"it already ignores {IGNORE_LINE}")
    lead = "" if not current or current.endswith("\n") else "\n"
    return FileAction(".gitignore", "append", f"{lead}{IGNORE_COMMENT}\n{IGNORE_LINE}\n")


def plan_init(root: Path, service: str | None = None, *, force: bool = False) -> InitPlan:
    """Look at the project and decide what to write; reads only."""
    from drillbook.errors import PreconditionFailed, UsageError
    from drillbook.model import NAME_PATTERN

    name = service if service is not None else service_name(folder_name(root))
    if not re.match(NAME_PATTERN, name) or len(name) > 100:
        msg = (
            f"--service expects letters, digits, '-' and '_' (starting with a letter or digit), "
            f"got {name!r}"
        )
        raise UsageError(msg, hint=f"for example --service {service_name(name)}")
    runbooks = root / "runbooks"
    if runbooks.exists() and not runbooks.is_dir():
        msg = f"{runbooks} exists and is not a folder; drillbook keeps its runbooks in runbooks/"
        raise UsageError(msg)
    _refuse_a_second_runbook(root, name)
    runbook = _file_action(
        root, f"runbooks/{name}.yaml", starter_runbook(name), force, reason="it exists"
    )
    if runbook.action == "keep":
        # The runbook is what init is for: without it, the rest is not worth writing.
        msg = f"{runbook.path} exists and differs from the starter runbook; nothing was written"
        raise PreconditionFailed(
            msg,
            hint="`drillbook check` validates the one you have; --force replaces it with the "
            "starter, --service NAME writes a runbook for another service",
        )
    actions = (
        runbook,
        _file_action(
            root,
            SCHEMA_PATH,
            schema_text(),
            force,
            reason=f"it differs from this drillbook's schema; `drillbook schema --out "
            f"{SCHEMA_PATH}` refreshes it",
        ),
        _tasks_action(root, force),
        _ignore_action(root),
    )
    for action in actions:
        if action.changes:
            _require_can_write(root, action)
    return InitPlan(root, name, actions)


def _require_can_write(root: Path, action: FileAction) -> None:
    """Refuse, before init writes its first file, a file it could not write (a folder that is
    not writable, a file system mounted read-only, an immutable file)."""
    from drillbook.errors import PreconditionFailed
    from drillbook.files import require_replaceable, require_writable

    path = root / action.path
    try:
        require_writable(path.parent, action.path)
        if action.action != "write":
            require_replaceable(path, action.path)
    except PreconditionFailed as exc:
        exc.message += "; nothing was written"
        raise


def _refuse_a_second_runbook(root: Path, service: str) -> None:
    """Refuse a starter runbook for a service that another file of runbooks/ describes: `check`
    refuses two runbooks of one service, so init would leave a project that fails it."""
    from drillbook.errors import PreconditionFailed
    from drillbook.runbook import declared_service, find_runbook_files

    folder = root / "runbooks"
    if not folder.is_dir():
        return
    for file in find_runbook_files([folder]):
        if file.name != f"{service}.yaml" and declared_service(file) == service:
            msg = (
                f"runbooks/{file.name} describes service {service!r} already, expected no "
                f"runbook of it before init writes runbooks/{service}.yaml; nothing was written"
            )
            raise PreconditionFailed(
                msg,
                hint=f"`drillbook check` validates runbooks/{file.name}; --service NAME writes "
                "a runbook for another service",
            )


def apply_init(plan: InitPlan) -> list[FileAction]:
    """Write what the plan says, each file atomically; the actions that wrote something."""
    from drillbook.errors import PreconditionFailed

    done: list[FileAction] = []
    for action in plan.actions:
        path = plan.root / action.path
        try:
            if action.action in ("write", "overwrite"):
                write_atomic(path, action.text)
            elif action.action == "append":
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(action.text)
            else:
                continue
        except OSError as exc:
            # A full disk, or a folder changed since the plan: each file is whole or untouched.
            written = ", ".join(a.path for a in done) or "nothing"
            msg = f"cannot write {action.path}: {exc.strerror or exc}; written before it: {written}"
            raise PreconditionFailed(
                msg,
                hint="fix the folder (space, permissions), then run init again: it writes only "
                "what is missing",
            ) from None
        done.append(action)
    return done


_TASKS = '''\
"""This project's invoke tasks, with drillbook's release tasks beside them.

`invoke --list` shows them all; `invoke check` validates runbooks/, `invoke plan`
shows what a release would do, `invoke release` runs the checklist. Add your own
tasks here with `@invoke.task`; on a name clash yours win (drillbook's stay
reachable as `drillbook TASK`).
"""

from __future__ import annotations

import sys

try:
    from drillbook.tasks import project_namespace
except ModuleNotFoundError as missing:
    if missing.name != "drillbook":
        raise
    # invoke runs in a Python without drillbook (pipx's invoke, a venv not activated).
    sys.exit(
        f"tasks.py: drillbook is not installed for {sys.executable}, which runs "
        "invoke; install it there (pip install drillbook), or run `drillbook TASK` "
        "from its venv"
    )

ns = project_namespace(__name__)
'''

_RUNBOOK = """\
__SCHEMA_LINE__
# The runbook of __SERVICE__: for every change, who owns it, what result is expected and how to
# roll it back. `drillbook check` validates it, `drillbook plan` shows what `release` would run.
# Paths are relative to the project root (the folder that holds runbooks/). Durations carry a
# unit (250ms, 2s, 5m). A command is a list of arguments; {env}, {version}, {previous}, {url} and
# {service} are filled in per argument.
drillbook: 1                      # format version
service: __SERVICE__
owner: team-__SERVICE__           # CHANGE ME: the team or person accountable for the service
# escalation: "#__SERVICE__-oncall"   # where the person on call pages
description: What __SERVICE__ does, in one line, for the person on call.

environments:                     # staging is required; checks run against its url
  staging:
    url: http://127.0.0.1:8000
    # config: config/staging.env  # `drillbook verify-config` checks it against config: below
    allow_hosts: [127.0.0.1, localhost]

# config:                         # rules for verify-config
#   required: [DATABASE_URL, LOG_LEVEL]
#   secrets: [DATABASE_URL]       # values masked in every output, the journal included
#   rules:
#     LOG_LEVEL: {one_of: [debug, info, warning, error]}

gates:                            # run before anything is deployed; null turns one off
  lint: [ruff, check, .]
  unit: [pytest, -q]

# deploy:                         # how a version reaches an environment; without it,
#   run: [./deploy.sh, "{env}", "{version}"]   # release runs the gates, checks, tag and note
#   timeout: 5m

checks:                           # named checks, used by the releases below
  healthy:
    get: /health
    expect: {status: 200}
    timeout: 2s
    retry: {attempts: 10, interval: 500ms}

releases:
  - version: 0.1.0
    changes:
      - id: first-release         # letters, digits, '-' and '_'
        title: The first release made with drillbook
        owner: team-__SERVICE__   # required on every change: who answers for it
        expected:                 # required: the result, in words and as checks
          summary: The service answers /health.
          checks: [healthy]
        rollback:                 # required: how to undo it, and how to prove the undo
          summary: Deploy the previous version again; nothing else changed.
          retry_safe: true        # running the rollback twice does no harm
          checks: [healthy]
"""
