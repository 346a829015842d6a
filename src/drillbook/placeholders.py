"""Placeholders written wrong: `{verison}`, `{Version}`, `${version}` in a command's arguments.

drillbook fills `{env}`, `{version}`, `{previous}`, `{url}` and `{service}` in the text of
commands, their environment variables, deploy variables and checks, and leaves every other
brace as it is (a command may take braces of its own: `jq '{id}'`). So a misspelt placeholder
would reach a deploy as the text `{verison}`, without a word, and `${version}` in a command
run without a shell would become `$1.2.0`. These rules find both in `check`, before anything
runs. Only a name close to a placeholder is taken for a typo; other braces pass.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from typing import Any

from drillbook import model
from drillbook.errors import Problem

#: `{name}` where name could be a placeholder. (A `$` before it is looked at by hand: an
#: optional group in front makes the search try it at every character, 30 times slower.)
_BRACED = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: How alike a name must be to a placeholder to be taken for a typo of it (difflib's ratio):
#: `verison`, `vesion`, `prev`, `envs` are; `id`, `name`, `user`, `path` are not.
_CUTOFF = 0.65
_KNOWN = ", ".join("{" + name + "}" for name in model.PLACEHOLDERS)

At = Callable[..., Problem]


def meant(name: str) -> str | None:
    """The placeholder `name` was probably meant to be, or None when it looks like none."""
    if name in model.PLACEHOLDERS:
        return None
    if name.lower() in model.PLACEHOLDERS:
        return name.lower()
    close = difflib.get_close_matches(name.lower(), model.PLACEHOLDERS, n=1, cutoff=_CUTOFF)
    return close[0] if close else None


def suspected(source: str) -> bool:
    """Whether a runbook's text may hold a placeholder written wrong: a cheap look at the file
    as written, so that most runbooks skip the walk over their fields."""
    for match in _BRACED.finditer(source):
        name = match.group(1)
        if name in model.PLACEHOLDERS:
            if source[match.start() - 1 : match.start()] == "$":
                return True
        elif meant(name) is not None:
            return True
    # A brace may be written as an escape in a quoted scalar: "\u007bverison}".
    lowered = source.lower()
    return any(escape in lowered for escape in ("\\x7b", "\\u007b", "\\u0000007b"))


def text_problems(text: str, path: tuple[Any, ...], what: str, at: At) -> Iterator[Problem]:
    """The placeholder typos in one text that drillbook fills: `what` names where it is."""
    for match in _BRACED.finditer(text):
        name = match.group(1)
        if name in model.PLACEHOLDERS and text[match.start() - 1 : match.start()] == "$":
            yield at(
                path,
                f"expected a placeholder as {{{name}}} in {what}, got ${{{name}}}: no shell "
                "reads it, so the placeholder would be filled in and the $ kept before its value",
                f'write "{{{name}}}"',
            )
            continue
        guess = meant(name)
        if guess is not None:
            yield at(
                path,
                f"unknown placeholder {{{name}}} in {what}: drillbook fills in only {_KNOWN}, "
                f"so it would stay the text {{{name}}}",
                f"did you mean {{{guess}}}?",
            )


def _walk(value: Any, path: tuple[Any, ...], what: str, at: At) -> Iterator[Problem]:
    """Every text inside `value` (mappings' keys and values, lists), as drillbook fills them."""
    if isinstance(value, str):
        yield from text_problems(value, path, what, at)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield from text_problems(key, (*path, key), what, at)
            yield from _walk(item, (*path, key), what, at)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, (*path, i), what, at)


def _command(step: model.Step | model.RunCheck, path: tuple[Any, ...], at: At) -> Iterator[Problem]:
    # A shell command's text is never filled (crossfield says so for placeholders written
    # right), and braces are the shell's own there: `{a,b}`, awk's `{print $1}`.
    if not isinstance(step.run, str):
        for i, arg in enumerate(step.run):
            yield from text_problems(arg, (*path, "run", i), f"argument {i + 1} of the command", at)
    for name, value in step.env.items():
        yield from text_problems(value, (*path, "env", name), f"the variable {name}", at)


def check_problems(
    check: model.HttpCheck | model.RunCheck, path: tuple[Any, ...], at: At
) -> Iterator[Problem]:
    """The placeholder typos of one check, named or inline."""
    if isinstance(check, model.RunCheck):
        yield from _command(check, path, at)
        if check.expect.output_contains is not None:
            yield from text_problems(
                check.expect.output_contains,
                (*path, "expect", "output_contains"),
                "the expected output",
                at,
            )
        return
    key = check.method.lower()
    yield from text_problems(check.target, (*path, key), "the check's URL", at)
    yield from _walk(dict(check.headers), (*path, "headers"), "the request's headers", at)
    yield from _walk(check.body, (*path, "body"), "the request's body", at)
    expect = check.expect
    for field, value in (
        ("json", expect.json_),
        ("body_contains", expect.body_contains),
        ("header", expect.header),
    ):
        yield from _walk(value, (*path, "expect", field), "the expected answer", at)


def step_problems(step: model.Step, path: tuple[Any, ...], at: At) -> Iterator[Problem]:
    """The placeholder typos of one step: a gate, the deploy or a rollback step."""
    yield from _command(step, path, at)


def environment_problems(
    environment: model.Environment, path: tuple[Any, ...], at: At
) -> Iterator[Problem]:
    """The placeholder typos of an environment's `deploy_env`."""
    for name, value in environment.deploy_env.items():
        yield from text_problems(
            value, (*path, "deploy_env", name), f"the deploy variable {name}", at
        )
