"""The `drillbook` console script: an invoke Program over the same collection as `tasks.py`.

Two things are solved here once for every task, rather than per task:

- trailing positional arguments (`drillbook check a.yaml b.yaml`, `drillbook resume RUN`):
  invoke's parser makes a positional argument required, so tasks declare a `rest` argument
  and the bare words after the task name (and every word after `--`) become `--rest=WORD`
  before invoke parses them;
- usage errors: each exits 2 (invoke's parser would exit 1, or stop with a traceback) and is
  said in a person's words, what was wrong and what is expected, with the closest name.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from invoke import Collection, Config, Exit, ParseError, Program
from invoke.exceptions import UnknownFileType

from drillbook import __version__
from drillbook.console import mute, ready_streams, write
from drillbook.errors import EXIT_INVALID, EXIT_PRECONDITION
from drillbook.usage import (
    REST_ATTRIBUTE,
    CommandLine,
    arguments,
    plain_message,
    spellings,
    task_names,
)


def rewrite_positionals(
    argv: Sequence[str], collection: Collection, core: Sequence[Any] = ()
) -> tuple[list[str], list[str]]:
    """`[prog, 'check', 'a.yaml', '--format', 'json']` -> `[..., '--path=a.yaml', ...]`; and
    the words after `--`, which are the task's bare words as they are.

    Those are kept from invoke's parser, which reads `--path=-p` as the option -p, and
    given to the task after it (`DrillbookProgram.parse_tasks`): `drillbook check -- -p`
    checks a file named `-p`. A task that takes none refuses them (ParseError): invoke would
    keep them for `c.run`, which no task of drillbook's uses, so they were dropped without a
    word and `check -- a.yaml` checked runbooks/ instead of a.yaml.

    A repeatable option given no value (`check --path`, `check --path --format json`) is
    refused as invoke refuses any other: invoke let it pass, empty, and `check --path $FILE`
    with FILE unset checked runbooks/ instead.

    The word after an option that takes a value is its value, the program's own options
    (`core`: `--config FILE`, `-D N`) after the task's name included.
    """
    out = list(argv[:1])
    rest: str | None = None
    task_name: str | None = None
    value_flags: set[str] = set()
    list_flags: dict[str, str] = {}  # each spelling of a repeatable option -> its long name
    task_flags: set[str] = set()
    expect_value: str | None = None  # the option typed just before, when it takes a value
    names = task_names(collection)
    core_values = spellings([arg for arg in core if arg.takes_value])
    for index, word in enumerate(argv[1:], start=1):
        if expect_value is not None:
            if expect_value in list_flags and (
                word == "--" or (word.startswith("-") and word.split("=", 1)[0] in task_flags)
            ):
                raise ParseError(f"{list_flags[expect_value]} needs a value")
            out.append(word)
            expect_value = None
            continue
        if word == "--":
            after = list(argv[index + 1 :])
            if "--complete" in out:  # the shell's completion hands its words over after `--`
                return [*out, *argv[index:]], []
            if after and rest is None:
                got = " ".join(map(repr, after))
                msg = (
                    f"`{task_name}` takes no bare words, so none after `--`; got {got}"
                    if task_name
                    else f"no task before `--`; got {got} after it"
                )
                raise ParseError(msg)
            return out, after
        if word.startswith("-"):
            out.append(word)
            flag = word.split("=", 1)[0]
            expect_value = flag if "=" not in word and flag in value_flags else None
            continue
        if rest is not None:
            out.append(f"--{rest}={word}")
            continue
        out.append(word)
        if word in names:
            task_name = word
            task = collection[word]
            rest = getattr(task.body, REST_ATTRIBUTE, None)
            value_flags, list_flags, task_flags = set(), {}, {"--help", "-h"}
            for arg in arguments(task):
                forms = spellings([arg])
                task_flags |= forms
                if arg.takes_value:
                    value_flags |= forms
                if arg.kind is list:
                    long = "--" + max(arg.names, key=len).replace("_", "-")
                    list_flags.update(dict.fromkeys(forms, long))
            # A program option the task does not shadow still takes its value after it.
            value_flags |= core_values - task_flags
    if expect_value in list_flags:
        raise ParseError(f"{list_flags[expect_value]} needs a value")
    return out, []


class UsageWithHint(ParseError):
    """A usage error the program finds itself, with what to do instead."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class DrillbookConfig(Config):
    """invoke's Config, for a HOME that is not a folder too (HOME=/dev/null: no home), and with
    a config file of invoke's that cannot be read said in one line rather than a traceback."""

    def _load_yaml(self, path: Any) -> Any:
        return _config_data(super()._load_yaml, path)

    _load_yml = _load_yaml

    def _load_json(self, path: Any) -> Any:
        return _config_data(super()._load_json, path)

    def _load_py(self, path: str) -> Any:
        return _config_data(super()._load_py, path)

    def load_user(self, merge: bool = True) -> None:
        """Load ~/.invoke.yaml and its kin; there are none when HOME is not a folder, or is a
        folder this user cannot enter."""
        if _home_unsearchable():
            # Another user's home (`docker run --user 1000` with HOME=/root, `sudo -u` keeping
            # HOME): whether a file is there cannot be known, so there is none to this user, as
            # git reads it. Refusing stopped every command, `--version` included, with exit 2.
            if merge:
                self.merge()
            return
        try:
            super().load_user(merge=merge)
        except NotADirectoryError:
            # invoke skips a file that does not exist, and only that: under a HOME that is a
            # file every name is "not a directory", which means the same.
            if merge:
                self.merge()


def _home_unsearchable() -> bool:
    """Whether the home folder is, as far as this user can tell, a folder whose entries it
    cannot look up: one without search permission, or one inside such a folder."""
    try:
        home = Path("~").expanduser()
        info = home.stat()
    except PermissionError:
        return True
    except (OSError, RuntimeError):  # none, or no home at all: invoke's own handling
        return False
    return stat.S_ISDIR(info.st_mode) and not os.access(home, os.X_OK)


def _config_data(load: Any, path: Any) -> dict[str, Any]:
    """What an invoke config file (~/.invoke.yaml, `-f FILE`) holds, or Exit saying why not.

    A missing file stays an OSError: invoke skips it, as it skips any file it does not find.
    """
    try:
        data = load(path)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except Exception as exc:  # broken YAML or JSON, a folder, a .py that raises
        found = " ".join(str(exc).split()) or type(exc).__name__
        msg = f"drillbook: cannot read the invoke config file {path}: {found}"
        raise Exit(f"{msg}\n  hint: {_FIX_CONFIG}", code=EXIT_INVALID) from None
    if data is None:  # an empty file
        return {}
    if not isinstance(data, dict):
        msg = (
            f"drillbook: the invoke config file {path} holds a {type(data).__name__}, expected "
            "a mapping of settings"
        )
        raise Exit(f"{msg}\n  hint: {_FIX_CONFIG}", code=EXIT_INVALID)
    return data


_FIX_CONFIG = "fix it or move it away; nothing ran"


class DrillbookProgram(Program):
    """invoke's Program with positional rest arguments and usage errors that exit 2."""

    def normalize_argv(self, argv: list[str] | str | None) -> None:
        """Rewrite trailing positional words into their task's rest option."""
        super().normalize_argv(argv)
        self.typed_argv = list(self.argv)
        if self.namespace is not None:
            self.argv, self.after_dashes = rewrite_positionals(
                self.argv, self.namespace, self.core_args()
            )

    def parse_core(self, argv: list[str] | str | None) -> None:
        """invoke's core parse, keeping the interpreter's own bytecode-writing setting."""
        dont_write = sys.dont_write_bytecode
        super().parse_core(argv)
        # invoke turns bytecode writing off (so a project's tasks.py leaves no .pyc behind).
        # drillbook's tasks come from its package, whose modules are imported lazily after this
        # point: with it off, a source checkout recompiles them on every run (~100 ms of a
        # release). `--write-pyc` and PYTHONDONTWRITEBYTECODE keep their meaning.
        sys.dont_write_bytecode = dont_write and not self.args["write-pyc"].value

    def parse_tasks(self) -> None:
        """invoke's parse of the tasks, then the words after `--` given to the last task's
        bare words as they are (a file named `-p` included)."""
        super().parse_tasks()
        words = getattr(self, "after_dashes", [])
        if not words or not self.tasks:
            return
        context = self.tasks[-1]  # `--` ends the command line: its words are the last task's
        rest = getattr(self.namespace[context.name].body, REST_ATTRIBUTE, None)  # type: ignore[index]
        argument = context.args[rest]
        if argument.kind is list:
            given = list(argument.value or [])
        else:
            given = [] if argument.value is None else [argument.value]
        if argument.kind is not list and len(given) + len(words) > 1:
            got = ", then ".join(repr(w) for w in [*given, *words][:2])
            raise UsageWithHint(
                f"`{context.name}` takes one {rest.upper()}; got {got}",
                hint=f"name one {rest.upper()}",
            )
        for word in words:
            argument.value = word

    def parse_cleanup(self) -> None:
        """invoke's clean-up (help, --list, completion), its list options checked first.

        invoke exited 1 on `--list=NAME` naming no collection and on `--list-depth` with
        `--list-format json`, and stopped with a traceback on a `--list-format` it has no
        lister for: all are usage errors.
        """
        for name, instead in _RUN_ONLY.items():
            if self.args[name].value not in (None, False):
                msg = f"--{name} is invoke's, for its `c.run`, which no task of drillbook's uses"
                raise UsageWithHint(f"{msg}: it would change nothing", hint=instead)
        formats = ("flat", "nested", "json")
        shape = self.args["list-format"].value
        if shape not in formats:
            msg = f"--list-format expects {', '.join(formats[:-1])} or {formats[-1]}, got {shape!r}"
            raise ParseError(msg)
        if shape == "json" and self.args["list-depth"].value:
            raise ParseError("--list-depth does not go with --list-format json, which lists all")
        root = self.args.list.value
        if isinstance(root, str) and self.collection is not None:
            try:
                self.collection.subcollection_from_path(root)
            except KeyError:
                msg = f"--list={root}: no collection {root!r}; drillbook's tasks are all in one"
                raise ParseError(msg) from None
        super().parse_cleanup()

    def run(self, argv: list[str] | str | None = None, exit: bool = True) -> None:
        """Parse and execute; map invoke's outcomes onto drillbook's exit codes."""
        try:
            try:
                self.create_config()
                self.parse_core(argv)
                self.parse_collection()
                self.parse_tasks()
                self.parse_cleanup()
                self.update_config()
            except UnknownFileType as exc:  # `-f FOLDER`: invoke reads .yaml, .json and .py
                hint = "-f (or INVOKE_RUNTIME_CONFIG) names a .yaml, .yml, .json or .py file"
                raise Exit(f"drillbook: {exc}\n  hint: {hint}", code=EXIT_INVALID) from None
            except ValueError as exc:
                # invoke's parser turns an option's value into its type (`--list-depth x`)
                # and lets the error through, naming neither the option nor the type.
                found = self.command_line().wrong_type()
                raise ParseError(found or f"a value of the wrong type: {exc}") from None
            self.execute()
        except ParseError as exc:
            line = self.command_line()
            message, hint = plain_message(str(exc)), line.usage_hint(str(exc))
            if getattr(exc, "hint", ""):
                hint = f"{exc.hint}; {hint}"
            twice = line.given_twice(str(exc))
            if twice is not None:
                message, fix = twice
                hint = f"{fix}; {hint}"
            else:
                message = line.unknown_word(str(exc)) or message
            # The stray word may be a secret typed in the wrong place (`--token $API_TOKEN`).
            write(sys.stderr, _masked(f"drillbook: {message}\n  hint: {hint}"))
            if line.wants_json():
                # A pipeline that asked for JSON gets JSON, a mistyped option included.
                from drillbook.errors import UsageError
                from drillbook.tasks._base import emit_json, error_json

                task_name = line.task_named() or "drillbook"
                emit_json(error_json(UsageError(message, hint=hint), task_name=task_name))
            if exit:
                sys.exit(EXIT_INVALID)
        except Exit as exc:
            if exc.message:
                write(sys.stderr, _masked(exc.message))
            if exit:
                sys.exit(exc.code)
        except KeyboardInterrupt:
            # A run (release, deploy, ...) stops through its session, which says where it
            # stopped; what lands here is a task that changes nothing outside its own files.
            write(
                sys.stderr,
                "drillbook: interrupted (SIGINT) before it finished; every file it wrote is "
                "whole, so running it again is safe",
            )
            if exit:
                sys.exit(130)
        except BrokenPipeError:
            # The reader of invoke's own output went away (`drillbook --list | head -1`): stop
            # quietly, as cat does. Tasks write through the console, which goes on without it.
            mute(sys.stdout)
            if exit:
                sys.exit(141)
        except OSError as exc:
            # invoke's own output (--list, --help, --version) to a full disk, or a file of its
            # own it could not read: what failed, not a traceback.
            mute(sys.stdout)
            what = f"cannot read {exc.filename}" if exc.filename else "cannot write its output"
            write(sys.stderr, f"drillbook: {what}: {exc.strerror or exc}")
            if exit:
                sys.exit(EXIT_PRECONDITION)

    def command_line(self) -> CommandLine:
        """The command line being parsed, to say what is wrong with it."""
        assert self.namespace is not None  # noqa: S101 - build_program gives one
        typed = getattr(self, "typed_argv", self.argv)
        return CommandLine(self.argv, self.namespace, self.core_args(), typed)

    def print_help(self) -> None:
        """What drillbook is and its tasks first; invoke's core options after them."""
        print(f"Usage: {self.binary} [--core-opts] <task> [--task-opts] ...")
        print("")
        print("drillbook turns a release checklist into code: runbooks/*.yaml say, for every")
        print("change, who owns it, what result is expected and how to roll it back.")
        print(f"`{self.binary} TASK --help` shows a task's options.")
        print("")
        if self.namespace is not None:
            self.list_tasks()
        print("Core options:")
        print("")
        # Without the options for `c.run` (refused, see _RUN_ONLY): `-R, --dry  Echo commands
        # instead of running` read as a dry run of drillbook's, and a release ran for real.
        shown = [
            (spec, text)
            for spec, text in self.initial_context.help_tuples()
            if not set(re.findall(r"--([\w-]+)", spec)) & set(_RUN_ONLY)
        ]
        self.print_columns(shown)

    def print_columns(self, tuples: Sequence[tuple[str, str | None]]) -> None:
        """Names and their help in two columns, the help wrapped to the terminal's width.

        invoke's own asks the terminal alone, so COLUMNS was ignored (`COLUMNS=120 drillbook
        --help | less` wrapped at 80), and on a terminal narrower than the names it asked
        textwrap for a negative width: `--help` failed. The width is COLUMNS, else the
        terminal's, else 80; the help column keeps at least _MIN_HELP_WIDTH characters.
        """
        import shutil
        import textwrap

        name_width = max(len(name) for name, _ in tuples)
        spec_width = self.leading_indent_width + name_width + self.col_padding
        width = shutil.get_terminal_size((80, 24)).columns
        wrapper = textwrap.TextWrapper(width=max(width - spec_width - 1, _MIN_HELP_WIDTH))
        for name, help_text in tuples:
            spec = f"{self.leading_indent}{name:<{name_width}}{' ' * self.col_padding}"
            chunks = wrapper.wrap(help_text or "")
            if not chunks:
                print(spec.rstrip())
                continue
            print(spec + chunks[0])
            for chunk in chunks[1:]:
                print(" " * len(spec) + chunk)
        print("")


#: invoke's core options that only set how its `c.run` runs a command, which no task of
#: drillbook's calls (they run commands through `process`): given to drillbook, each would be
#: ignored, `--dry` above all, whose help says "Echo commands instead of running". What to
#: use instead, where there is something.
_RUN_ONLY = {
    "dry": "for a run that changes nothing, `drillbook plan` or `drillbook release --dry-run`",
    "warn-only": "",
    "echo": "",
    "pty": "",
    "hide": "",
    "command-timeout": "a command's time limit is the runbook's `timeout` of its step",
    "prompt-for-sudo-password": "",
}

#: The narrowest the help column of `--help` and `--list` gets, however narrow the terminal.
_MIN_HELP_WIDTH = 20


def _masked(text: str) -> str:
    """`text` with the environment's secrets and those of every runbook read masked, as the
    tasks mask theirs: a line the program itself writes to the terminal is no exception."""
    from drillbook.secrets import Masker, remembered

    return Masker.from_environ(extra=remembered()).mask(text)


def build_program() -> DrillbookProgram:
    """The console script's Program."""
    from drillbook.tasks import namespace

    return DrillbookProgram(
        name="drillbook",
        binary="drillbook",
        version=__version__,
        namespace=namespace,
        config_class=DrillbookConfig,
    )


def main() -> None:
    """Entry point of the `drillbook` console script."""
    ready_streams()
    build_program().run()
