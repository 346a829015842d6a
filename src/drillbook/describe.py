"""Runbook parts in plain words, for notes, reports, docs and the console."""

from __future__ import annotations

import re
import shlex
from typing import Any

from drillbook.model import HttpCheck, Runbook, RunCheck, Step, format_duration


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def code(text: str) -> str:
    """`text` between backticks, as many more than it holds, so that its own stay inside.

    A command such as ``echo `date` `` reads whole in a Markdown page, not as two code spans
    with its middle outside them.
    """
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def describe_expect(check: HttpCheck) -> str:
    """What an HTTP check expects, in words: `200 with status ok within 2s`."""
    expect = check.expect
    parts: list[str] = []
    statuses = expect.statuses()
    if statuses:
        parts.append(" or ".join(str(s) for s in statuses))
    if expect.json_:
        parts.append("with " + ", ".join(f"{k} {_value(v)}" for k, v in expect.json_.items()))
    if expect.body_contains:
        parts.append(f"containing {expect.body_contains!r}")
    if expect.header:
        parts.append("with header " + ", ".join(f"{k}: {v}" for k, v in expect.header.items()))
    limits = expect.percentiles()
    if limits:
        parts.append(
            "at "
            + ", ".join(f"{name} under {format_duration(v)}" for name, v in limits.items())
            + f" over {check.samples} requests"
        )
    if expect.max_time is not None:
        parts.append(f"each within {format_duration(expect.max_time)}")
    elif not limits:
        parts.append(f"within {format_duration(check.timeout)}")
    return " ".join(parts) if parts else "an answer"


def describe_check(check: HttpCheck | RunCheck, name: str | None = None) -> str:
    """A check in words: `GET /health answers 200 with status ok within 2s`."""
    if isinstance(check, RunCheck):
        cmd = check.run if isinstance(check.run, str) else shlex.join(check.run)
        text = f"{code(cmd)} exits {check.expect.exit}"
        if check.expect.output_contains:
            text += f" and prints {check.expect.output_contains!r}"
    else:
        text = f"{check.method} {check.target} answers {describe_expect(check)}"
    if check.retry.attempts > 1:
        text += (
            f" (up to {check.retry.attempts} tries, {format_duration(check.retry.interval)} apart)"
        )
    return text


def check_label(ref: str | HttpCheck | RunCheck, runbook: Runbook) -> str:
    """A short label for a check reference: its name, or `GET /path`."""
    if isinstance(ref, str):
        return ref
    if ref.name:
        return ref.name
    if isinstance(ref, RunCheck):
        return "run " + (ref.run if isinstance(ref.run, str) else shlex.join(ref.run))
    return f"{ref.method} {ref.target}"


def describe_step(step: Step) -> str:
    """A step as the command line a person would type."""
    if isinstance(step.run, str):
        return step.run
    return shlex.join(step.run)
