"""Settings from the environment, the config files, and the parts of deploy.py without a server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import deploy
from app.settings import Settings, SettingsError, read_version

BASE = {"SECRET_KEY": "s3cret-for-tests", "DEMO_ROOT": "/srv/orders"}


def test_staging_config_file_gives_working_settings(service_root):
    values = deploy.parse_env_file(service_root / "config" / "staging.env")
    settings = Settings.from_environ({**values, "DEMO_ROOT": "/srv/orders", "APP_VERSION": "1.1.0"})
    assert settings.database_path == Path("/srv/orders/var/staging/orders.db")
    assert settings.log_path == Path("/srv/orders/var/staging/logs/app.jsonl")
    assert (settings.log_level, settings.admin_page_size) == ("info", 20)
    assert settings.version == "1.1.0"
    assert values["SECRET_KEY"] not in repr(settings)


def test_staging_and_production_configs_have_the_same_keys(service_root):
    staging = deploy.parse_env_file(service_root / "config" / "staging.env")
    production = deploy.parse_env_file(service_root / "config" / "production.env")
    assert staging.keys() == production.keys()


def test_an_absolute_sqlite_path_stays_absolute():
    settings = Settings.from_environ({**BASE, "DATABASE_URL": "sqlite:////srv/data/orders.db"})
    assert settings.database_path == Path("/srv/data/orders.db")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"DATABASE_URL": "postgresql://orders@db.internal/orders"}, "SQLite only"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"ADMIN_PAGE_SIZE": "0"}, "ADMIN_PAGE_SIZE"),
        ({"ADMIN_PAGE_SIZE": "many"}, "ADMIN_PAGE_SIZE"),
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"DEMO_ENV": "../prod"}, "DEMO_ENV"),
    ],
)
def test_unusable_settings_are_refused_by_name(extra, message):
    with pytest.raises(SettingsError, match=message) as caught:
        Settings.from_environ({**BASE, **extra})
    assert "db.internal" not in str(caught.value)


def test_the_version_comes_from_the_release_folder(tmp_path):
    assert read_version(tmp_path) == "0.0.0+dev"
    (tmp_path / "VERSION").write_text("1.2.0\n")
    assert read_version(tmp_path) == "1.2.0"


def test_env_file_syntax(tmp_path):
    path = tmp_path / "x.env"
    path.write_text("# c\n\nexport A=1\nB = 'two words'\nC=\"x=y\"\n")
    assert deploy.parse_env_file(path) == {"A": "1", "B": "two words", "C": "x=y"}
    path.write_text("A=1\nnot a setting hunter2\n")
    with pytest.raises(deploy.DeployError, match=r"x\.env:2: expected KEY=VALUE") as caught:
        deploy.parse_env_file(path)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5:8080", "https://127.0.0.1:8080", "http://127.0.0.1", "http://x:1"]
)
def test_deploy_serves_on_loopback_only(url):
    with pytest.raises(deploy.UsageError):
        deploy.loopback_address(url)


def test_deploy_accepts_loopback_urls():
    assert deploy.loopback_address("http://127.0.0.1:8181") == ("127.0.0.1", 8181)
    assert deploy.loopback_address("http://localhost:9000/") == ("localhost", 9000)


def test_deploy_refuses_versions_that_are_not_semver(capsys):
    with pytest.raises(SystemExit) as caught:
        deploy.parse_args(["--env", "staging", "--version", "../../etc"])
    assert caught.value.code == 2
    assert "semver" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_deploy_refuses_a_timeout_that_is_not_a_number_of_seconds(capsys, value):
    with pytest.raises(SystemExit) as caught:
        deploy.parse_args(["--env", "staging", "--version", "1.1.0", "--timeout", value])
    assert caught.value.code == 2
    assert "--timeout" in capsys.readouterr().err


def test_deploy_keeps_the_last_five_releases_and_never_the_live_one(tmp_path):
    paths = deploy.EnvPaths(tmp_path, "staging")
    versions = [f"1.0.{n}" for n in range(7)]
    for order, version in enumerate(versions):
        release = paths.releases / version
        release.mkdir(parents=True)
        (release / "VERSION").write_text(version)
        os.utime(release / "VERSION", ns=(order * 10**9, order * 10**9))  # deploy order
    deploy.switch_current(paths, paths.releases / "1.0.0")  # the oldest is the live one
    (paths.releases / ".incoming-9.9.9-123").mkdir()  # left by an interrupted deploy
    assert deploy.prune_releases(paths) == ["1.0.1"]
    assert sorted(p.name for p in paths.releases.iterdir()) == ["1.0.0", *versions[2:]]


def test_deploy_builds_a_release_and_switches_the_link(tmp_path, service_root):
    shutil.copytree(service_root / "app", tmp_path / "app")
    (tmp_path / "app" / "__pycache__").mkdir(exist_ok=True)
    paths = deploy.EnvPaths(tmp_path, "staging")
    first = deploy.build_release(paths, "1.1.0")
    assert deploy.switch_current(paths, first) is None
    again = deploy.build_release(paths, "1.1.0")  # the same version again replaces the copy
    assert again == first
    assert (first / "VERSION").read_text() == "1.1.0\n"
    assert (first / "app" / "releases.py").is_file()
    assert not (first / "app" / "__pycache__").exists()
    second = deploy.build_release(paths, "1.2.0")
    assert deploy.switch_current(paths, second) == "releases/1.1.0"
    assert paths.current.readlink() == Path("releases/1.2.0")
    assert [p.name for p in paths.base.iterdir() if p.name.startswith(".")] == []
