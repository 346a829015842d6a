"""Fixtures of the demo service's own tests: an app per version on a fresh database.

These tests are the `unit` gate of the demo runbook and run inside a copy of this folder
(`pytest -q tests`), so they need nothing from drillbook.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

SERVICE_ROOT = Path(__file__).resolve().parent.parent
if str(SERVICE_ROOT) not in sys.path:
    sys.path.insert(0, str(SERVICE_ROOT))

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` and warns when its test client falls back to `httpx`;
    # the fallback works, and a warning at import would fail runs that turn warnings into errors.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient

from app.main import create_app  # noqa: E402 - importable once SERVICE_ROOT is on sys.path
from app.settings import Settings  # noqa: E402

FAKE_KEY = "test-key-value-7d1c"  # made up; asserted never to reach the log

MakeClient = Callable[..., TestClient]


def make_settings(root: Path, version: str, **overrides: Any) -> Settings:
    """Settings for a service whose database and logs live under `root`."""
    values: dict[str, Any] = {
        "env": "staging",
        "root": root,
        "database_path": root / "var" / "staging" / "orders.db",
        "log_path": root / "var" / "staging" / "logs" / "app.jsonl",
        "version": version,
        "secret_key": FAKE_KEY,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def secret() -> str:
    """The SECRET_KEY the test apps get."""
    return FAKE_KEY


@pytest.fixture
def service_root() -> Path:
    """The folder that holds app/, config/ and deploy.py."""
    return SERVICE_ROOT


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[MakeClient]:
    """A factory of test clients; clients made in one test share the database.

    Clients are started (lifespan run) and stopped at the end of the test; with `start=False`
    the caller starts it with `with client:`.
    """
    with ExitStack() as stack:

        def make(version: str = "1.1.0", *, start: bool = True, **overrides: Any) -> TestClient:
            client = TestClient(create_app(make_settings(tmp_path, version, **overrides)))
            return stack.enter_context(client) if start else client

        yield make


@pytest.fixture
def log_lines(tmp_path: Path) -> Callable[[], list[dict[str, Any]]]:
    """Reads the service's log as parsed JSON lines (every line must parse)."""

    def read() -> list[dict[str, Any]]:
        path = tmp_path / "var" / "staging" / "logs" / "app.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    return read
