"""The service's settings, read from environment variables.

deploy.py reads `config/{env}.env` and hands every key to the server as an environment variable,
so secrets never appear in a command line. The service itself only reads its environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

LOG_LEVELS = ("debug", "info", "warning", "error")
DEV_VERSION = "0.0.0+dev"
_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

# The release folder holds `app/` and the `VERSION` file deploy.py writes next to it.
# resolve() follows the `current` symlink, so a running server keeps the version it started with.
RELEASE_DIR = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting is missing or has a value the service cannot use."""


def read_version(release_dir: Path = RELEASE_DIR) -> str:
    """The version written to the release folder, or a development marker outside a release."""
    try:
        text = (release_dir / "VERSION").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return DEV_VERSION
    return text or DEV_VERSION


def sqlite_path(database_url: str, root: Path) -> Path:
    """The file of a `sqlite:///relative` or `sqlite:////absolute` URL; relative to the root."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix):
        scheme = database_url.split(":", 1)[0] or "(none)"
        msg = (
            f"DATABASE_URL: this demo service runs on SQLite only (sqlite:///path), "
            f"got the scheme {scheme!r}"
        )
        raise SettingsError(msg)
    path = Path(database_url[len(prefix) :])
    if not str(path) or str(path) == ".":
        msg = "DATABASE_URL: expected a file path after sqlite:///"
        raise SettingsError(msg)
    return path if path.is_absolute() else root / path


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to start. `secret_key` is never logged or shown."""

    env: str
    root: Path
    database_path: Path
    log_path: Path
    version: str
    log_level: str = "info"
    admin_page_size: int = 20
    secret_key: str = field(default="", repr=False)
    #: The id deploy.py gives each start, repeated by /health; empty when started otherwise.
    instance: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables (deploy.py sets them from `config/{env}.env`).

        `DEMO_ENV` names the environment and `DEMO_ROOT` the project root that relative paths
        start from; `APP_VERSION` overrides the release folder's `VERSION` file; `DEMO_INSTANCE`
        is the id of this start.
        """
        env_vars = os.environ if environ is None else environ
        env = env_vars.get("DEMO_ENV", "staging")
        if not _ENV_NAME.match(env):
            # The name becomes a folder under var/; nothing that could climb out of it.
            msg = f"DEMO_ENV: expected letters, digits, '-' or '_', got {env!r}"
            raise SettingsError(msg)
        root = Path(env_vars.get("DEMO_ROOT") or Path.cwd()).resolve()
        database_url = env_vars.get("DATABASE_URL", f"sqlite:///var/{env}/orders.db")
        log_level = env_vars.get("LOG_LEVEL", "info").strip().lower()
        if log_level not in LOG_LEVELS:
            msg = f"LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}"
            raise SettingsError(msg)
        raw_size = env_vars.get("ADMIN_PAGE_SIZE", "20").strip()
        try:
            page_size = int(raw_size)
        except ValueError:
            page_size = 0
        if not 1 <= page_size <= 500:
            msg = f"ADMIN_PAGE_SIZE: expected a whole number from 1 to 500, got {raw_size!r}"
            raise SettingsError(msg)
        secret_key = env_vars.get("SECRET_KEY", "")
        if not secret_key:
            # Named, never shown: the message must not carry the value even when it is wrong.
            msg = "SECRET_KEY: expected a value, got none"
            raise SettingsError(msg)
        return cls(
            env=env,
            root=root,
            database_path=sqlite_path(database_url, root),
            log_path=root / "var" / env / "logs" / "app.jsonl",
            version=env_vars.get("APP_VERSION") or read_version(),
            log_level=log_level,
            admin_page_size=page_size,
            secret_key=secret_key,
            instance=env_vars.get("DEMO_INSTANCE", ""),
        )
