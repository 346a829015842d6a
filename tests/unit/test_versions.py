"""Semver order, and git's rules for tag names checked without git (compared with real git)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from drillbook.versions import is_semver, semver_key, tag_name_problem


def test_semver() -> None:
    versions = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-beta",
        "1.0.0-rc.1",
        "1.0.0",
        "1.1.0",
        "2.0.0",
    ]
    shuffled = [versions[i] for i in (4, 0, 6, 2, 5, 1, 3)]
    assert sorted(shuffled, key=semver_key) == versions
    assert semver_key("1.10.0") > semver_key("1.9.0")
    assert is_semver("1.2.3+build.5")
    assert not is_semver("v1.2.3")
    assert not is_semver("1.2")
    assert not is_semver("01.2.3")
    assert semver_key("not a version") == (-1,)


#: Tag names and why git refuses them (None: git accepts the name).
TAG_NAMES = [
    ("v1.0.0", None),
    ("release/1.0.0", None),
    ("v1.0.0-rc.1+build.5", None),
    ("@", None),  # git refuses the ref `@`, not `refs/tags/@`
    ("a@b", None),
    ("x.lockfile", None),
    ("über-1.0.0", None),
    ("", "the name is empty"),
    ("-v1.0.0", "it starts with '-'"),
    ("v 1.0.0", "it holds a space"),
    ("v1.0.0\t", "it holds the control character U+0009"),
    ("v1\x7f", "it holds the control character U+007F"),
    ("v~1", "it holds '~'"),
    ("v^1", "it holds '^'"),
    ("v:1", "it holds ':'"),
    ("v?1", "it holds '?'"),
    ("v*1", "it holds '*'"),
    ("v[1", "it holds '['"),
    ("v\\1", "it holds '\\\\'"),
    ("v1..0", "it holds '..'"),
    ("v@{1}", "it holds '@{'"),
    ("/v1", "it starts or ends with '/', or holds '//'"),
    ("v1/", "it starts or ends with '/', or holds '//'"),
    ("a//v1", "it starts or ends with '/', or holds '//'"),
    ("v1.", "it ends with '.'"),
    (".v1", "a part of it ('.v1') starts with '.'"),
    ("rel/.v1", "a part of it ('.v1') starts with '.'"),
    ("v1.lock", "a part of it ('v1.lock') ends with '.lock'"),
    ("v1.lock/x", "a part of it ('v1.lock') ends with '.lock'"),
]


@pytest.mark.parametrize(("name", "problem"), TAG_NAMES, ids=[repr(n) for n, _ in TAG_NAMES])
def test_tag_name_rules(name: str, problem: str | None) -> None:
    assert tag_name_problem(name) == problem


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize(("name", "problem"), TAG_NAMES, ids=[repr(n) for n, _ in TAG_NAMES])
def test_tag_name_rules_agree_with_git(name: str, problem: str | None) -> None:
    proc = subprocess.run(
        ["git", "check-ref-format", f"refs/tags/{name}"], capture_output=True, check=False
    )
    git_accepts = proc.returncode == 0
    if name.startswith("-"):
        # drillbook's own rule on top of git's: on a command line it would read as an option.
        assert git_accepts
        assert problem is not None
    else:
        assert git_accepts == (problem is None)
