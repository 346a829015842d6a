"""The files drillbook writes whole get the modes the person's umask says, as any program's."""

from __future__ import annotations

import stat

import pytest
from _project import Project


@pytest.mark.parametrize(("umask", "mode"), [(0o077, 0o600), (0o027, 0o640), (0o002, 0o664)])
def test_notes_docs_and_the_run_index_follow_the_umask(
    released: Project, umask: int, mode: int
) -> None:
    # They were made 0644 whatever the umask: under 077 a note and the docs were readable by
    # every user of the machine, under 002 the team that shares the checkout could not rewrite
    # them.
    shop = released
    for path in (shop.root / "notes").iterdir():
        path.unlink()
    for args in (("rollback-note", "--version", "1.1.0"), ("docs",), ("history",)):
        done = shop.run(*args, umask=umask)
        assert done.code == 0, done
    written = [
        shop.root / "notes" / "shop-1.1.0-rollback.md",
        shop.root / "site" / "index.html",
        shop.root / "site" / "shop.md",
        shop.root / ".drillbook" / "cache" / "runs.json",
    ]
    modes = {
        path.relative_to(shop.root).as_posix(): stat.S_IMODE(path.stat().st_mode)
        for path in written
    }
    assert modes == dict.fromkeys(modes, mode)


def test_under_a_group_umask_compiled_templates_are_kept_between_runs(released: Project) -> None:
    # Under umask 002 the cache folder was made group-writable, too open to load code from:
    # it stayed empty and every run compiled its templates again.
    shop = released
    cache = shop.home / "cache"
    done = shop.run("rollback-note", "--version", "1.1.0", umask=0o002, XDG_CACHE_HOME=str(cache))
    assert done.code == 0, done
    assert stat.S_IMODE((cache / "drillbook").stat().st_mode) == 0o700
    assert list((cache / "drillbook").glob("templates-*/*.jinja2"))
