"""Versions and the git tags that mark them: semver order and git's rules for tag names.

Plain functions with no dependencies, so that the git layer and the model share them and
neither pulls in the other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_SEMVER = re.compile(SEMVER_PATTERN)

#: Characters git never allows in a ref name (git-check-ref-format(1), rules 4, 5 and 10).
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def is_semver(version: str) -> bool:
    """Whether the text is a semver version."""
    return bool(_SEMVER.match(version))


def semver_key(version: str) -> tuple[Any, ...]:
    """A sort key that orders versions as semver does (pre-releases before releases)."""
    match = _SEMVER.match(version)
    if not match:
        return (-1,)
    major, minor, patch, pre = match.group(1), match.group(2), match.group(3), match.group(4)
    pre_key: tuple[Any, ...]
    if pre is None:
        pre_key = (1,)
    else:
        pre_key = (
            0,
            tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")),
        )
    return (int(major), int(minor), int(patch), pre_key)


def is_pre_release(version: str) -> bool:
    """Whether a semver version is a pre-release (`1.1.0-rc.1`; build metadata aside)."""
    return "-" in version.split("+", 1)[0]


def highest_below(candidates: Iterable[str], version: str) -> str | None:
    """The highest of the semver `candidates` below `version`, as a rollback goes back: for a
    final release only final releases count (1.1.0-rc.1 is not what 1.1.0 rolls back to); for
    a pre-release, pre-releases count too."""
    final_only = not is_pre_release(version)
    ceiling = semver_key(version)
    below = [
        v for v in candidates if semver_key(v) < ceiling and not (final_only and is_pre_release(v))
    ]
    return max(below, key=semver_key) if below else None


def tag_name_problem(tag: str) -> str | None:
    """Why `refs/tags/TAG` is not a name git accepts, or None when it is.

    git's own rules (git-check-ref-format(1)), checked here so that no git process is needed
    and a bad `tag:` format is found when the runbook is read; plus one of drillbook's: a name
    that starts with '-' would read as an option on git's command line.
    """
    if not tag:
        return "the name is empty"
    if tag.startswith("-"):
        return "it starts with '-'"
    bad = _REF_FORBIDDEN.search(tag)
    if bad:
        char = bad.group()
        if char == " ":
            return "it holds a space"
        if char.isprintable():
            return f"it holds {char!r}"
        return f"it holds the control character U+{ord(char):04X}"
    if ".." in tag:
        return "it holds '..'"
    if "@{" in tag:
        return "it holds '@{'"
    if tag.startswith("/") or tag.endswith("/") or "//" in tag:
        return "it starts or ends with '/', or holds '//'"
    if tag.endswith("."):
        return "it ends with '.'"
    for part in tag.split("/"):
        if part.startswith("."):
            return f"a part of it ({part!r}) starts with '.'"
        if part.endswith(".lock"):
            return f"a part of it ({part!r}) ends with '.lock'"
    return None
