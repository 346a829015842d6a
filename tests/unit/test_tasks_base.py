"""The task layer's edge: what a task that ends in a bug leaves on stdout and stderr."""

from __future__ import annotations

import json

import pytest
from invoke import Context, Exit

from drillbook.tasks._base import drill_task


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
