"""Where the compiled templates are kept: the user's cache folder, never the project."""

from __future__ import annotations

from pathlib import Path

import pytest

from drillbook.render import bytecode_cache


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder to run in, and a HOME of its own."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


def test_the_cache_is_in_xdg_cache_home(project: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    cache = bytecode_cache(autoescape=False)

    assert cache is not None
    assert Path(cache.directory).parent == tmp_path / "cache" / "drillbook"
    assert list(project.iterdir()) == []


@pytest.mark.parametrize("value", ["relcache", ".", ""])
def test_a_relative_xdg_cache_home_is_ignored_and_nothing_lands_in_the_project(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # The XDG spec calls a relative path invalid. Taken as it is, it put the compiled templates
    # in the folder the command runs in, the project: its tree was dirty for the next release.
    monkeypatch.setenv("XDG_CACHE_HOME", value)

    cache = bytecode_cache(autoescape=False)

    assert cache is not None
    assert Path(cache.directory).parent == tmp_path / "home" / ".cache" / "drillbook"
    assert list(project.iterdir()) == []


def test_a_relative_home_means_no_cache_rather_than_one_in_the_project(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", "home")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    assert bytecode_cache(autoescape=False) is None
    assert list(project.iterdir()) == []
