"""Fixtures for the end-to-end release tests: a fixture project, stopped and checked after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _project import Project, make_project


@pytest.fixture
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    """The fixture project, committed; its service is stopped and no process may be left.

    Parametrize it indirectly with a dict of `make_project` keywords to change the project.
    """
    project = make_project(tmp_path, **getattr(request, "param", {}))
    try:
        yield project
    finally:
        left = project.close()
    assert not left, f"processes left behind: {left}"


@pytest.fixture
def released(shop: Project) -> Project:
    """The fixture project with 1.0.0 released to staging."""
    result = shop.run("release", "--version", "1.0.0")
    assert result.code == 0, result
    return shop
