"""The task layer's edge: what a task that ends in a bug leaves on stdout and stderr, and
what the help of each task says of its options."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
from invoke import Context, Exit

from drillbook.errors import PreconditionFailed
from drillbook.tasks import namespace
from drillbook.tasks._base import drill_task, emit_json

# Taken when the tests are collected: invoke's parser pops a task's help texts as it reads its
# options, and tests of the command line before these run the program in this process.
HELP = {name: dict(item.help) for name, item in namespace.tasks.items()}


@drill_task()
def broken(c: Context, format: str = "text") -> None:
    """A task with a bug in it."""
    del c, format
    msg = "a bug"
    raise RuntimeError(msg)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_bug_is_one_line_and_exit_2_and_json_when_json_was_asked(
    fmt: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRILLBOOK_DEBUG", raising=False)
    with pytest.raises(Exit) as info:
        broken.body(Context(), format=fmt)

    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert "drillbook broken: internal error: RuntimeError: a bug" in err
    assert "DRILLBOOK_DEBUG=1" in err
    if fmt == "text":
        assert out == ""
        return
    payload = json.loads(out)
    assert payload["task"] == "broken"
    assert payload["outcome"] == "internal_error"
    assert payload["exit"] == 2
    assert payload["error"] == "internal error: RuntimeError: a bug"


@drill_task()
def inner(c: Context, format: str = "text") -> None:
    """A task whose document is all it does."""
    del format
    emit_json(json.dumps({"inner": True}))


@drill_task()
def outer(c: Context, format: str = "text") -> None:
    """A project's own task: its document, then another task's, then a refusal."""
    emit_json(json.dumps({"outer": True}))
    inner.body(c, format=format)
    msg = "refused after both"
    raise PreconditionFailed(msg, hint="fix it")


def test_a_task_run_inside_another_keeps_both_documents_and_the_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(Exit) as info:
        outer.body(Context(), format="json")

    assert info.value.code == 3
    out = capsys.readouterr().out
    decoder = json.JSONDecoder()
    first, end = decoder.raw_decode(out)
    second, end = decoder.raw_decode(out, end + 1)
    assert out[end:].strip() == ""
    # Written as the outer task ends, in order: the inner one's end did not drop the first.
    assert (first["outer"], first["exit"], first["error"]) == (True, 3, "refused after both")
    assert second == {"inner": True}


@drill_task()
def stopped(c: Context, format: str = "text") -> None:
    """A task that only reads, stopped by Ctrl-C."""
    del c, format
    raise KeyboardInterrupt


def test_ctrl_c_of_a_task_that_is_no_run_is_json_when_json_was_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(KeyboardInterrupt):  # the program says so on stderr and exits 130
        stopped.body(Context(), format="json")

    payload = json.loads(capsys.readouterr().out)
    assert (payload["task"], payload["outcome"], payload["exit"]) == ("stopped", "interrupted", 130)
    assert payload["retry_safe"] is True
    assert payload["run"] is None


def _options(item: Any) -> dict[str, inspect.Parameter]:
    """A task's options: the parameters of its function after the context."""
    params = inspect.signature(item.body).parameters
    return {name: p for name, p in params.items() if name != "c"}


def test_every_option_with_a_default_names_it_in_its_help() -> None:
    # `verify-config --help` said "the environment whose config file to check" and left out
    # that it is staging when no --env is given.
    for name, item in namespace.tasks.items():
        for option, param in _options(item).items():
            if isinstance(param.default, str) and param.default:
                said = HELP[name].get(option, "")
                assert param.default in said, (name, option, said)


@pytest.mark.parametrize("name", ["plan", "release", "rehearse", "integration", "rollback-note"])
def test_a_version_left_out_is_the_newest_and_the_help_says_so(name: str) -> None:
    item = namespace.tasks[name]
    assert _options(item)["version"].default is None
    assert "(default: the newest in the runbook)" in " ".join(HELP[name]["version"].split())


@pytest.mark.parametrize("name", ["deploy", "tag"])
def test_a_version_that_must_be_given_says_so_in_its_help(name: str) -> None:
    # A deploy or a tag of a version not named could be of one that just failed.
    assert "(required)" in HELP[name]["version"]
