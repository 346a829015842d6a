"""The demo's workspace on machines unlike the author's: the user's git setup. Real git, real
folders; no server is started.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from drillbook import gitops
from drillbook.demo import prepare_workspace


def failing_hooks(folder: Path) -> Path:
    """A folder of hooks that each refuse, as a strict company setup might install."""
    folder.mkdir(parents=True)
    for name in (
        "pre-commit",
        "prepare-commit-msg",
        "commit-msg",
        "post-commit",
        "reference-transaction",
        "pre-push",
    ):
        hook = folder / name
        hook.write_text(f"#!/bin/sh\necho 'hook {name} refuses' >&2\nexit 1\n")
        hook.chmod(0o755)
    return folder


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME with no system git config: only what a test writes there counts."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_CONFIG_GLOBAL", "XDG_CONFIG_HOME", "GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_the_workspace_runs_none_of_the_users_git_hooks_or_signing(
    home: Path, tmp_path: Path
) -> None:
    hooks = failing_hooks(tmp_path / "hooks")
    template = tmp_path / "template"
    failing_hooks(template / "hooks")
    config = home / ".gitconfig"
    config.write_text(
        f"[core]\n\thooksPath = {hooks}\n"
        f"[init]\n\ttemplateDir = {template}\n\tdefaultBranch = trunk\n"
        "[commit]\n\tgpgSign = true\n"
        "[tag]\n\tgpgSign = true\n\tforceSignAnnotated = true\n"
        "[gpg]\n\tprogram = /nonexistent/gpg\n"
    )
    before = config.read_bytes()

    ws = prepare_workspace(tmp_path / "ws")

    log = subprocess.run(
        ["git", "-C", str(ws.root), "log", "--format=%an <%ae> %s"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert log.stdout.strip() == (
        "drillbook demo <demo@drillbook.invalid> The demo service as it runs today"
    )
    # The release's tag goes through the same repository and must not meet the hooks either.
    assert gitops.create_tag(ws.root, "v1.0.0", "1.0.0\n") == "created"
    assert config.read_bytes() == before  # the user's git config is read, never written
    assert sorted(p.name for p in home.iterdir()) == [".gitconfig"]
