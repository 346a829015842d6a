"""Load a runbook file into a validated `Runbook`, or say exactly what is wrong and where.

Every problem is reported as `FILE:LINE:COLUMN: field.path: what is wrong (expected X, got Y)`,
all problems of a file at once. Nothing from the file is ever evaluated: tags are refused,
template-looking text stays text, and paths must stay inside the project.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drillbook import crossfield, model, yamlsafe
from drillbook.errors import DrillbookError, InvalidInput, Problem, UsageError
from drillbook.model import Runbook

RUNBOOK_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedRunbook:
    """A validated runbook with where it came from."""

    runbook: Runbook
    path: Path
    root: Path
    sha256: str

    @property
    def display_path(self) -> str:
        """The runbook's path relative to its project, for messages."""
        try:
            return str(self.path.relative_to(self.root))
        except ValueError:
            return str(self.path)


def project_root_for(path: Path) -> Path:
    """The project root of a runbook file: the folder that holds `runbooks/`."""
    path = path.absolute()
    if path.parent.name == "runbooks":
        return path.parent.parent
    return path.parent


def display(path: Path) -> str:
    """A path as a person typed it: relative to the working directory when inside it."""
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_runbook(path: Path, *, root: Path | None = None) -> LoadedRunbook:
    """Read, parse and validate one runbook; raise InvalidInput with every problem found."""
    name = display(path)
    try:
        with path.open("rb") as handle:
            # One byte over the cap is enough to refuse it: a huge file is never read whole.
            raw = handle.read(yamlsafe.MAX_BYTES + 1)
            size = os.fstat(handle.fileno()).st_size if len(raw) > yamlsafe.MAX_BYTES else 0
    except OSError as exc:
        problem = Problem(name, 1, 1, "", f"cannot read the file: {exc.strerror or exc}")
        raise InvalidInput([problem]) from None
    if size:
        msg = (
            f"the file is {size:,} bytes, over the {yamlsafe.MAX_BYTES:,}-byte limit for a runbook"
        )
        problem = Problem(name, 1, 1, "", msg, "split it, or remove what is not needed")
        raise InvalidInput([problem])
    path = path.absolute()
    return load_runbook_bytes(raw, name=name, path=path, root=root or project_root_for(path))


def load_runbook_bytes(raw: bytes, *, name: str, path: Path, root: Path) -> LoadedRunbook:
    """Validate runbook bytes; `name` is how the file is named in messages."""
    source = _Source(raw, name)
    data = source.data()
    if data is None:
        msg = "the runbook is empty; expected a mapping that starts with `drillbook: 1`"
        raise InvalidInput([Problem(name, 1, 1, "", msg)])
    if not isinstance(data, dict):
        found = "a list" if isinstance(data, list) else model._describe(data)
        msg = f"expected a mapping at the top level (drillbook: 1, service: ...), got {found}"
        mark = source.doc().root_mark
        raise InvalidInput([Problem(name, mark.line, mark.column, "", msg)])
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        from drillbook.explain import explain  # only a runbook with a problem needs it

        raise InvalidInput(explain(exc, source.doc(), name)) from None

    def at(path: tuple[Any, ...], message: str, hint: str | None = None) -> Problem:
        from drillbook.explain import field_path

        mark, _ = source.doc().locate(path)
        return Problem(name, mark.line, mark.column, field_path(path), message, hint)

    problems = list(crossfield.problems(runbook, root, at, source.text))
    if problems:
        raise InvalidInput(sorted(problems, key=lambda p: (p.line, p.column)))
    return LoadedRunbook(runbook, path.absolute(), root.absolute(), hashlib.sha256(raw).hexdigest())


class _Source:
    """A runbook's text, its data, and (read only when a message needs them) its positions.

    Most runbooks are valid, so the data is read first without positions (`parse_data`); the
    positions are read, by a second parse, only for a file that has a problem to report.
    """

    def __init__(self, raw: bytes, name: str) -> None:
        self.name = name
        try:
            self.text = yamlsafe.decode(raw)
        except yamlsafe.YamlError as exc:
            raise InvalidInput(self._problems(exc)) from None
        self._doc: yamlsafe.Document | None = None

    def data(self) -> Any:
        try:
            return yamlsafe.parse_data(self.text)
        except yamlsafe.NeedsFullParse:
            return self.doc().data

    def doc(self) -> yamlsafe.Document:
        if self._doc is None:
            try:
                self._doc = yamlsafe.parse(self.text, what="runbook")
            except yamlsafe.YamlError as exc:
                raise InvalidInput(self._problems(exc)) from None
        return self._doc

    def _problems(self, exc: yamlsafe.YamlError) -> list[Problem]:
        return [
            Problem(self.name, p.line, p.column, p.field, p.message, p.hint) for p in exc.problems
        ]


def is_runbook_name(path: Path) -> bool:
    """Whether a file found in a folder is taken for a runbook: `*.yaml` or `*.yml`, not hidden.

    A hidden name is never a runbook of its own, as a shell's `runbooks/*.yaml` skips it: macOS
    leaves `._NAME.yaml` beside each file it copies to a foreign disk, which stopped `check`
    with bytes that are not UTF-8 and every release with "several runbooks".
    """
    return path.suffix in RUNBOOK_SUFFIXES and not path.name.startswith(".")


def find_runbook_files(paths: Iterable[Path]) -> list[Path]:
    """Runbook files named directly or found (not recursively) in the given folders; a file
    named twice (`check a.yaml runbooks/`) is listed once, where it first came."""
    paths = list(paths)
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            files = sorted(
                (p for p in path.iterdir() if is_runbook_name(p) and p.is_file()),
                key=lambda p: p.name,
            )
            if not files:
                msg = f"no runbooks in {display(path)} (expected *.yaml or *.yml files)"
                hint = "run `drillbook init` to write a starter runbook"
                if (path / "runbooks").is_dir():  # `check .` from the project root
                    hint = f"the runbooks are in {display(path / 'runbooks')}/: check that folder"
                raise UsageError(msg, hint=hint)
            found.extend(files)
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(str(path)):
            # A pattern the shell left as it is (quoted, or matching nothing there).
            matches = sorted(Path(p) for p in glob.glob(str(path)))  # noqa: PTH207
            files = [p for p in matches if p.is_file()]
            if not files:
                msg = f"no runbook matches {display(path)}"
                raise UsageError(msg, hint="name the files, or a folder of them")
            found.extend(files)
        else:
            from drillbook.files import special_kind

            kind = special_kind(path)
            if kind is not None:
                # Not "no such file": it is there, and it is never read (a pipe would block).
                msg = (
                    f"{display(path)} is {kind}, expected a runbook file (*.yaml, *.yml) or a "
                    "folder of them"
                )
                raise UsageError(msg, hint="save the runbook to a file, then check that file")
            msg = f"no such file or folder: {display(path)}"
            raise UsageError(msg)
    if len(paths) < 2:
        return found  # one folder lists each file once: no path is resolved for nothing
    seen: set[Path] = set()
    unique = []
    for file in found:
        key = file.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(file)
    return unique


def load_project_runbook(root: Path, service: str | None = None) -> LoadedRunbook:
    """The runbook a task acts on: the only one in `runbooks/`, or the one for `service`."""
    folder = root / "runbooks"
    if not folder.is_dir():
        msg = f"no runbooks/ folder in {root}; drillbook acts on a project's runbooks"
        raise UsageError(msg, hint="cd into the project, or run `drillbook init` to start one here")
    files = find_runbook_files([folder])
    if service is not None:
        return ProjectRunbooks(root, files).find(service)
    if len(files) > 1:
        names = ", ".join(sorted(declared_service(f) for f in files))
        msg = f"several runbooks in runbooks/ (services {names}); say which with --service NAME"
        raise UsageError(msg)
    return load_runbook(files[0], root=root)


_SERVICE_LINE = re.compile(rb"""^service:[ \t]*["']?([A-Za-z0-9_.-]+)["']?[ \t]*(?:#.*)?$""", re.M)


def declared_service(file: Path) -> str:
    """The service a runbook file names on its `service:` line, else the file's stem."""
    try:
        match = _SERVICE_LINE.search(file.read_bytes()[: yamlsafe.MAX_BYTES])
    except OSError:
        match = None
    return match.group(1).decode() if match else file.stem


class ProjectRunbooks:
    """A project's runbook files, found by service; each file read and parsed at most once.

    `find` reads the file named after the service, then the files whose top-level `service:`
    line names it; their problems are the service's own and are raised. Only when neither
    finds it is every file parsed, and a broken runbook of another service is then passed
    over: it must not keep a person from releasing, or rolling back, a service it does not
    describe. `history` asks for many services through one of these.
    """

    def __init__(self, root: Path, files: list[Path]) -> None:
        self.root = root
        self.files = files
        self._names: dict[Path, list[str]] = {}
        self._parsed: dict[Path, LoadedRunbook | DrillbookError] = {}
        # The first file of each stem, in the files' order: asked once a service, it is a
        # lookup, not a pass over every file (history asks for hundreds of services).
        self._by_stem: dict[str, Path] = {}
        for file in reversed(files):
            self._by_stem[file.stem] = file

    def find(self, service: str) -> LoadedRunbook:
        """The runbook of `service`; raises its own problems, or `UsageError` if none has it."""
        named = self._by_stem.get(service)
        if named is not None:
            return self._load(named)
        for file in self.files:
            if service in self._named(file):
                loaded = self._load(file)
                if loaded.runbook.service == service:
                    return loaded
        broken: list[str] = []
        for file in self.files:
            try:
                loaded = self._load(file)
            except DrillbookError:
                broken.append(
                    file.relative_to(self.root).as_posix()
                    if file.is_relative_to(self.root)
                    else str(file)
                )
                continue
            if loaded.runbook.service == service:
                return loaded
        names = ", ".join(sorted(f.stem for f in self.files))
        msg = f"no runbook for service {service!r} in runbooks/ (found: {names})"
        if broken:
            msg += f"; {len(broken)} could not be read: {', '.join(broken)}"
            raise UsageError(msg, hint="`drillbook check` shows what is wrong with them")
        raise UsageError(msg)

    def _named(self, file: Path) -> list[str]:
        """The services the top-level `service:` lines of `file` name (the file is not parsed)."""
        if file not in self._names:
            try:
                text = file.read_bytes()
            except OSError:
                text = b""
            self._names[file] = [m.group(1).decode() for m in _SERVICE_LINE.finditer(text)]
        return self._names[file]

    def _load(self, file: Path) -> LoadedRunbook:
        if file not in self._parsed:
            try:
                self._parsed[file] = load_runbook(file, root=self.root)
            except DrillbookError as exc:
                self._parsed[file] = exc
        found = self._parsed[file]
        if isinstance(found, DrillbookError):
            raise found
        return found
