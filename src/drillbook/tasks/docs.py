"""`docs`: Markdown and static HTML runbook docs for the person on call."""

from __future__ import annotations

import os
from pathlib import Path

from invoke import Context, Exit

from drillbook.console import Console
from drillbook.tasks._base import drill_task, require_path


@drill_task(
    help={
        "out": "the folder to write to (default: site/ in the project)",
        "check": "write nothing; exit 1 when the docs on disk are stale, missing or extra",
        "service": "only this service's pages (default: every runbook in runbooks/)",
    }
)
def docs(
    c: Context, out: str | None = None, check: bool = False, service: str | None = None
) -> None:
    """Write runbook docs (Markdown, HTML) for the person on call; --check fails on stale docs."""
    from drillbook.docs import (
        DEFAULT_OUT,
        build_site,
        build_site_from_files,
        check_site,
        write_site,
    )
    from drillbook.files import require_writable
    from drillbook.project import find_project_root
    from drillbook.runbook import find_runbook_files, load_project_runbook

    require_path(out, "--out")
    root = find_project_root()
    folder = root / "runbooks"
    # --out is a path as typed, from here; the default is the project's own site/.
    target = Path(out).absolute() if out else root / DEFAULT_OUT
    shown = out or os.path.relpath(target)
    if service is not None:
        loaded = load_project_runbook(root, service)
        service = loaded.runbook.service
        if not check:
            require_writable(target, "the docs")
        pages = build_site(root, [loaded], target, service=service)
        if _holds_others(target, pages):
            # The folder is the whole site: its index lists every service. One service's
            # docs are its own two pages; the index stays as `drillbook docs` wrote it.
            pages = [p for p in pages if not p.name.startswith("index.")]
    else:
        files = find_runbook_files([folder])
        if not check:
            require_writable(target, "the docs")
        pages = build_site_from_files(root, files, target)
    from drillbook.secrets import Masker, remembered

    # As every task's output: a folder named after a token (`--out "$CI_JOB_TOKEN"`) is too.
    console = Console(masker=Masker.from_environ(extra=remembered()))
    complete = service is None
    if check:
        found = check_site(target, pages, complete=complete)
        if found.fresh:
            console.print(f"docs in {shown} are fresh ({len(pages)} files)", style="green")
            return
        for word, names in (("missing", found.missing), ("stale", found.stale)):
            for name in names:
                differs = found.differences.get(name)
                console.print(
                    f"{word:<8} {Path(shown) / name}" + (f": {differs}" if differs else "")
                )
        for name in found.extra:
            console.print(f"extra    {Path(shown) / name} (no runbook describes it any more)")
        from drillbook.files import special_kind

        odd = [(p.name, kind) for p in pages if (kind := special_kind(target / p.name))]
        if odd:
            # `drillbook docs` would refuse it: say what to do first.
            name, kind = odd[0]
            console.error(
                f"drillbook docs: {Path(shown) / name} is {kind}, not a regular file: move it "
                f"out of the way, then run `drillbook docs{_args(out, service)}`"
            )
            raise Exit(code=1)
        from drillbook.docs import foreign_files

        foreign = foreign_files(target, pages)
        if foreign:
            # `drillbook docs` would refuse to replace them: say so, and what to do first.
            names = ", ".join(str(Path(shown) / name) for name in foreign)
            console.error(
                f"drillbook docs: {names} {'is' if len(foreign) == 1 else 'are'} not written by "
                "drillbook docs, which will not replace a file of yours: move "
                f"{'it' if len(foreign) == 1 else 'them'} out of the way or use another --out"
            )
            raise Exit(code=1)
        if target.exists() and not target.is_dir():
            # `drillbook docs` would refuse it: say what to do first.
            console.error(
                f"drillbook docs: {shown} is a file, expected the docs folder: move it out "
                f"of the way, then run `drillbook docs{_args(out, service)}`"
            )
            raise Exit(code=1)
        because = (
            "; the pages show the runbooks, the git tags and the runs in the journal "
            "(.drillbook/journal/), so docs written where other runs were journaled (or "
            "none, as in a fresh CI checkout) differ from these"
            if found.stale
            else ""
        )
        console.error(
            f"drillbook docs: docs are stale: run `drillbook docs{_args(out, service)}`{because}"
        )
        raise Exit(code=1)
    before = write_site(target, pages, complete=complete)
    written = len(before.missing) + len(before.stale)
    removed = len(before.extra)
    summary = f"wrote {written} of {len(pages)} files to {shown}"
    if removed:
        summary += f", removed {removed} page{'s' if removed != 1 else ''} of gone services"
    if not written and not removed:
        summary = f"docs in {shown} were already fresh ({len(pages)} files)"
    console.print(summary)
    console.print(f"  open: {Path(shown) / 'index.html'}")


def _holds_others(target: Path, pages: list) -> bool:
    """Whether `target` holds docs pages of services other than those of `pages`."""
    from drillbook.docs import our_files

    own = {p.name for p in pages}
    return any(not name.startswith("index.") and name not in own for name in our_files(target))


def _args(out: str | None, service: str | None) -> str:
    words = ""
    if out:
        words += f" --out {out}"
    if service:
        words += f" --service {service}"
    return words
