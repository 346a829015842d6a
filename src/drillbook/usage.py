"""The command line as typed, and what is wrong with it: invoke's parse errors said in a
person's words (what was wrong, what is expected, the closest name) for `cli`'s program."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from invoke import Collection

#: Attribute a task function sets to name the argument that takes its bare positional words.
REST_ATTRIBUTE = "drillbook_rest"

#: A word that reads as a version (`1.2.0`, `v1.2.0-rc.1`) or as an environment's name.
_VERSION_WORD = re.compile(r"[vV]?[0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.+-]+)?")
_NAME_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class CommandLine:
    """A command line given to drillbook's program, after its bare words were rewritten."""

    def __init__(
        self,
        argv: Sequence[str],
        namespace: Collection,
        core: Sequence[Any],
        typed: Sequence[str] | None = None,
    ) -> None:
        self.argv = list(argv)  # as invoke parses it: bare words as `--rest=WORD`
        self.typed = list(typed if typed is not None else argv)  # as the person typed it
        self.namespace = namespace
        self.core = list(core)  # the program's own options

    def usage_hint(self, error: str) -> str:
        """`did you mean release?` for a mistyped task or option, else where to look."""
        named = self.task_named()
        general = (
            f"`drillbook {named} --help` lists its options; `drillbook --list` lists the tasks"
            if named
            else "`drillbook --list` lists the tasks; `drillbook TASK --help` their options"
        )
        word = stray_word(error)
        if word is None:
            return general
        if word in PROGRAM_WORDS and named is None:
            # `drillbook help`, as git and pip spell it.
            return f"did you mean `drillbook {PROGRAM_WORDS[word]}`? {general}"
        later = self.before_task(word) if word.startswith("-") else None
        if later is not None and word in spellings(arguments(self.namespace[later])):
            return f"`drillbook {later} {word} ...`; {general}"
        try:
            if word.startswith("-"):
                known = self.option_names(of_task=later is None)
            else:
                known = sorted(task_names(self.namespace))
        except Exception:  # a hint must never hide the error it explains
            return general
        import difflib  # only for a mistyped word: start-up stays light

        # Without their dashes: `--` shared by every option made `--nope` "close" to
        # `--complete`.
        bare = {name.lstrip("-"): name for name in known}
        # A word after a task is a second task mistyped (`lint unti`) or a value typed without
        # its option (`deploy staging`, which was "close" to `tag`): only a near name is a task.
        value = not word.startswith("-") and named is not None
        cutoff = 0.75 if value else 0.6
        close = difflib.get_close_matches(word.lstrip("-"), list(bare), n=1, cutoff=cutoff)
        if close:
            return f"did you mean `{bare[close[0]]}`? {general}"
        option = self.option_for_value(named, word) if value and named else None
        return f"did you mean `{option}`? {general}" if option else general

    def option_for_value(self, task_name: str, word: str) -> str | None:
        """`--version 1.2.0` or `--env staging`: a bare word typed after a task read as the
        value of one of its options, or None when it reads as neither."""
        names = {name for arg in arguments(self.namespace[task_name]) for name in arg.names}
        if "version" in names and _VERSION_WORD.fullmatch(word):
            return f"--version {word.lstrip('vV')}"
        if "env" in names and _NAME_WORD.fullmatch(word):
            return f"--env {word}"
        return None

    def unknown_word(self, error: str) -> str | None:
        """invoke's "No idea what 'X' is!" said as what X is not, and what is expected."""
        word = stray_word(error)
        if word is None:
            return None
        task_name = self.task_named()
        if word.startswith("-") and len(word) > 1:
            later = self.before_task(word)
            if later is not None and word in spellings(arguments(self.namespace[later])):
                return f"{word} is an option of `{later}`: it goes after the task's name"
            if task_name is None or later is not None:
                return f"drillbook has no option {word}"
            options = ", ".join(sorted(self.option_names(core=False)))
            return f"`{task_name}` has no option {word}; its options: {options or 'none'}"
        switch = self.switch_given(word)
        if switch is not None:
            return f"{switch} is a switch and takes no value; got {switch}={word}"
        if task_name is None:
            return f"no task named {word!r}"
        return f"`{task_name}` takes no bare words; got {word!r}"

    def wrong_type(self) -> str | None:
        """`--list-depth expects a whole number, got 'x'`: the whole-number option whose value
        on the command line is not one, or None when none is found."""
        numbers: dict[str, str] = {}  # each spelling of a whole-number option -> its long name
        options = list(self.core)
        task_name = self.task_named()
        if task_name is not None:
            options += arguments(self.namespace[task_name])
        for arg in options:
            if arg.kind is int:
                long = "--" + max(arg.names, key=len).replace("_", "-")
                numbers.update(
                    {("--" if len(n) > 1 else "-") + n.replace("_", "-"): long for n in arg.names}
                )
        words = self.argv[1:]
        for word, after in with_next(words):
            flag, equals, value = word.partition("=")
            if flag not in numbers and len(word) > 2 and word[:2] in numbers:
                flag, value, equals = word[:2], word[2:], "="  # `-Dx`
            if flag not in numbers:
                continue
            value = value if equals else (after or "")
            try:
                int(value)
            except ValueError:
                return f"{numbers[flag]} expects a whole number, got {value!r}"
        return None

    def switch_given(self, value: str) -> str | None:
        """The option typed as `--yes=VALUE` when it takes no value (invoke split it in two)."""
        options = list(self.core)
        task_name = self.task_named()
        if task_name is not None:
            options += arguments(self.namespace[task_name])
        switches = spellings([arg for arg in options if not arg.takes_value])
        for word in self.argv[1:]:
            flag, equals, given = word.partition("=")
            if equals and given == value and flag in switches:
                return flag
        return None

    def before_task(self, option: str) -> str | None:
        """The task named after `option` on the command line (`drillbook --yes deploy`): the
        option was read as one of the program's own."""
        task_name = self.task_named()
        if task_name is None:
            return None
        words = self.argv[1:]
        at = next((i for i, w in enumerate(words) if w.split("=", 1)[0] == option), None)
        return task_name if at is not None and at < words.index(task_name) else None

    def task_named(self) -> str | None:
        """The task named on the command line, if any."""
        names = task_names(self.namespace)
        return next((word for word in self.argv[1:] if word in names), None)

    def given_twice(self, error: str) -> tuple[str, str] | None:
        """`--version is given twice` when invoke's "No idea what '0.2.0' is!" means that;
        and what to do about it.

        invoke's parser takes a value for an option once; the value after a repeated option
        becomes a stray word, and the error named the value, not the option repeated.
        """
        stray = stray_word(error)
        task_name = self.task_named()
        if stray is None or task_name is None:
            return None
        task = self.namespace[task_name]
        flags: dict[str, str] = {}  # each spelling of an option that takes one value -> --long
        for arg in arguments(task):
            if arg.takes_value and arg.kind is not list:
                long = "--" + max(arg.names, key=len).replace("_", "-")
                flags.update(
                    {("--" if len(n) > 1 else "-") + n.replace("_", "-"): long for n in arg.names}
                )
        rest = getattr(task.body, REST_ATTRIBUTE, None)
        typed = self.typed
        words = self.argv[self.argv.index(task_name) + 1 :]
        seen: dict[str, str] = {}
        for word, after in with_next(words):
            long = flags.get(word.split("=", 1)[0])
            if long is None:
                continue
            value = word.split("=", 1)[1] if "=" in word else after
            if long in seen and value == stray:
                if long == f"--{rest}" and word not in typed:
                    # Both bare words (`resume RUN1 RUN2`): the option is not what was typed.
                    what = rest.upper()
                    got = f"{seen[long]!r}, then {value!r}"
                    return f"`{task_name}` takes one {what}; got {got}", f"name one {what}"
                return f"{long} is given twice ({seen[long]!r}, then {value!r})", "give it once"
            seen.setdefault(long, value or "")
        return None

    def wants_json(self) -> bool:
        """Whether the command line asks for `--format json` (`-f json` of a task that has it)."""
        # As typed: in argv, the `json` of a task that takes bare words is `--rest=json`.
        words = self.typed[1:]
        short = False
        task_name = self.task_named()
        if task_name is not None:
            task = self.namespace[task_name]
            short = any("format" in arg.names and "f" in arg.names for arg in arguments(task))
        for word, after in with_next(words):
            if word == "--format=json" or (short and word in ("-fjson", "-f=json")):
                return True
            if (word == "--format" or (short and word == "-f")) and after == "json":
                return True
        return False

    def option_names(self, *, core: bool = True, of_task: bool = True) -> list[str]:
        """`--format`, ...: the long options of the task named on the command line (with
        `--help` when `core`), or the program's own when no task is named or not `of_task`.

        The program's others (`--command-timeout`, `--hide`) are invoke's settings for `c.run`,
        which drillbook's tasks do not use: offered for a task's `--timeout` they mislead.
        """
        task_name = self.task_named() if of_task else None
        if task_name is None:
            names = [n for arg in self.core for n in arg.names if len(n) > 1]
        else:
            task = self.namespace[task_name]
            names = [n for arg in arguments(task) for n in arg.names if len(n) > 1]
            names += ["help"] if core else []
        return [f"--{n.replace('_', '-')}" for n in names]


#: Words typed as tasks that are the program's own options.
PROGRAM_WORDS = {"help": "--help", "list": "--list", "version": "--version"}


_NEEDS_VALUE = re.compile(
    r"Flag <Argument: ([\w-]+)(?: \([^)]*\))?> needed value and was not given one!"
)


def spellings(args: Sequence[Any]) -> set[str]:
    """Every way to type these invoke arguments: `--dry-run`, `-d`."""
    return {("--" if len(n) > 1 else "-") + n.replace("_", "-") for a in args for n in a.names}


def with_next(words: Sequence[str]) -> list[tuple[str, str | None]]:
    """Each word with the one after it (None after the last)."""
    return [(word, words[i + 1] if i + 1 < len(words) else None) for i, word in enumerate(words)]


def stray_word(error: str) -> str | None:
    """The word of invoke's "No idea what 'X' is!" (X as typed), or None for another error."""
    match = re.fullmatch(r"No idea what ('.*'|\".*\") is!", error, flags=re.DOTALL)
    if match is None:
        return None
    import ast  # only for a usage error: start-up stays light

    word = ast.literal_eval(match.group(1))  # invoke wrote it with repr()
    return word if isinstance(word, str) else None


def plain_message(error: str) -> str:
    """invoke's parse error in a person's words (`--version needs a value`)."""
    match = _NEEDS_VALUE.fullmatch(error)
    if match:
        name = match.group(1).replace("_", "-")
        return f"{'--' if len(name) > 1 else '-'}{name} needs a value"
    return error


def arguments(task: Any) -> list[Any]:
    """A task's invoke arguments, its help texts kept (get_arguments() consumes them)."""
    saved_help = dict(task.help)
    try:
        return task.get_arguments()
    finally:
        task.help = saved_help


def task_names(collection: Collection) -> set[str]:
    """Every name a task of `collection` answers to, its aliases included."""
    names: set[str] = set()
    for name, aliases in collection.task_names.items():
        names.add(name)
        names.update(aliases)
    return names
