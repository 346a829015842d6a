"""Spies on real functions: they still run, and the test sees each call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drillbook import runbook


def runbook_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The file names `runbook.load_runbook` reads from now on, in order."""
    read: list[str] = []
    real = runbook.load_runbook

    def counted(path: Path, **kwargs: Any) -> runbook.LoadedRunbook:
        read.append(path.name)
        return real(path, **kwargs)

    monkeypatch.setattr(runbook, "load_runbook", counted)
    return read
