"""`demo`: the bundled tour, told by running the real commands on the embedded staging service."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from invoke import Context, Exit

from drillbook.console import Console
from drillbook.errors import EXIT_CHECK_FAILED
from drillbook.tasks._base import drill_task, require_path


@dataclass(frozen=True)
class _Row:
    label: str
    expected: str
    got: str
    seconds: float | None
    mark: str  # as told, NOT as told, interrupted


@contextlib.contextmanager
def _signals(token: Any) -> Iterator[list[int]]:
    """SIGINT, SIGTERM and SIGHUP stop the running act; a second one kills it at once. Either
    way the demo goes on to stop its staging server before it exits, which is why this is not
    `process.handle_signals` (that one exits at once on the second signal). SIGHUP is a closed
    terminal: left to its default, it ended the demo on the spot and its server ran on."""
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) == 1:
            token.stop(signum)
        else:
            token.kill()

    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, handler) for s in stopping}
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


def _table(console: Console, rows: list[_Row]) -> None:
    head = ("act", "expected", "got", "time", "")
    cells = [head] + [(r.label, r.expected, r.got, _seconds(r.seconds), r.mark) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    for i, cell in enumerate(cells):
        line = "  ".join(cell[j].ljust(widths[j]) for j in range(4))
        if i == 0:
            console.print(f"  {line}".rstrip(), style="bold")
            continue
        style = "green" if cell[4] == "as told" else "red"
        console.print(f"  {line}  {console.paint(cell[4], style)}")


@drill_task(
    help={
        "keep": "build the workspace in this folder (new or empty) instead of a temporary one",
        "verbose": "show every line the commands print, not only the steps, checks and digest",
    }
)
def demo(c: Context, keep: str | None = None, verbose: bool = False) -> None:
    """The tour on the bundled service: release, rehearse, a failed release rolled back, docs."""
    from drillbook.demo import (
        Compact,
        port_held,
        prepare_workspace,
        require_extra,
        run_act,
        stop_staging,
        story,
        verify,
    )
    from drillbook.errors import DrillbookError
    from drillbook.process import StopToken

    require_path(keep, "--keep")
    require_extra()
    console = Console()
    # Forwarded: the act's own drillbook journals the signal the demo got (Ctrl-C is SIGINT).
    token = StopToken(forward=True)
    began = time.monotonic()
    rows: list[_Row] = []
    artifacts: dict[str, Path] = {}
    ws = None
    width = max(80, shutil.get_terminal_size((120, 24)).columns) - 5
    with _signals(token) as received:
        try:
            try:
                ws = prepare_workspace(Path(keep) if keep else None)
            except DrillbookError:
                if token.stopped:  # git was interrupted by the same Ctrl-C
                    raise Exit(code=128 + (received[0] if received else signal.SIGINT)) from None
                raise
            console.print(
                "drillbook demo: a release checklist as code, on a real service", style="bold"
            )
            console.print(
                "  The demo service is a small FastAPI orders API with an admin area. Its\n"
                "  runbook, runbooks/demo-service.yaml, says for every change who owns it, what\n"
                "  result is expected and how to roll it back. Each act runs a real drillbook\n"
                "  command there."
            )
            console.print(f"  workspace: {ws.root} (a new git repository)")
            console.print(f"  staging:   {ws.url} (uvicorn, started by the runbook's deploy)")
            for act in story():
                if token.stopped:
                    break
                command = "drillbook " + " ".join(act.args)
                compact = Compact(width)
                if act.quiet:
                    console.print(f"\nset-up: {command} (1.0.0, the service as it runs today)")
                    show = None
                else:
                    console.print("")
                    console.print(f"── {act.label.split(' ', 1)[0]}. {command}", style="bold")
                    for line in act.story:
                        console.print(f"   {line}")

                    def show(line: str, compact: Compact = compact) -> None:
                        shown = [line] if verbose else compact.feed(line)
                        for text in shown:
                            console.print(console.paint(f"     {text}", "dim"))

                started_wall = time.time()
                result = run_act(ws, act, on_line=show, stop=token)
                for text in compact.flush():
                    console.print(console.paint(f"     {text}", "dim"))
                seconds = result.duration_ms / 1000
                if token.stopped or result.outcome == "interrupted":
                    rows.append(
                        _Row(act.label, act.expected, "interrupted", seconds, "interrupted")
                    )
                    break
                verdict = verify(ws, act, result, started_wall)
                mark = "as told" if verdict.as_told else "NOT as told"
                rows.append(_Row(act.label, act.expected, verdict.got, seconds, mark))
                if verdict.artifact is not None:
                    artifacts[act.key] = verdict.artifact
                style = "green" if verdict.as_told else "red"
                if act.quiet:
                    console.print(f"   {console.paint(verdict.got, style)} ({seconds:.1f}s)")
                else:
                    console.print(f"   → {console.paint(verdict.got, style)} ({seconds:.1f}s)")
                if not verdict.as_told and act.quiet:
                    for text in result.output_tail.splitlines()[-20:]:
                        console.print(f"     {text}")
                if not verdict.as_told and act.key == "setup":
                    break  # without 1.0.0 on staging, no later act can go as told
        finally:
            if ws is not None:
                for line in stop_staging(ws):
                    console.print(console.paint(f"   staging: {line}", "dim"))
    _report(console, rows, artifacts, ws, time.monotonic() - began, interrupted=bool(received))
    if received:
        raise Exit(code=128 + received[0])
    failed = [r.label for r in rows if r.mark != "as told"]
    if failed or not rows:
        console.error(
            f"drillbook demo: the story did not go as told ({', '.join(failed)}); "
            "the table above says what was expected and what happened"
        )
        if ws is not None and port_held(ws.url):
            # Its own servers are stopped by now: another program took the port it chose.
            again = "" if ws.temporary else " with a new --keep folder"
            console.error(
                f"  hint: staging's port {ws.url.rsplit(':', 1)[1]} is held by another program "
                f"(it was free when the demo chose it); run `drillbook demo` again{again}: "
                "it picks another port"
            )
        raise Exit(code=EXIT_CHECK_FAILED)


def _report(
    console: Console,
    rows: list[_Row],
    artifacts: dict[str, Path],
    ws: Any,
    took: float,
    *,
    interrupted: bool,
) -> None:
    console.print("")
    console.print("the story, act by act:", style="bold")
    _table(console, rows)
    names = {
        "release-1.1.0": "rollback note",
        "rehearse": "rehearsal report",
        "docs": "docs index",
    }
    console.print("")
    for key, name in names.items():
        if key in artifacts:
            console.print(f"  {name + ':':<18}{artifacts[key]}")
    if ws is not None:
        console.print(f"  {'journal:':<18}{ws.root / '.drillbook' / 'journal'}")
        console.print(f"  {'workspace:':<18}{ws.root}")
        if ws.temporary:
            # Quoted: pasted as shown, a folder under a TMPDIR with a space would be several.
            remove = f"rm -rf {shlex.quote(str(ws.root))}"
            console.print(f"  {'':<18}(a temporary folder; `{remove}` when done)")
        # A tag to show only once the story made it (an interrupted one may not have).
        show = "git show v1.1.0" if "v1.1.0" in _tags(ws.root) else "git log"
        console.print("  staging is stopped; the workspace is a plain git repository. To go on")
        console.print("  there, with this drillbook and the Python its commands need on PATH:")
        from drillbook.demo import go_on_line

        console.print(f"    {go_on_line(ws.root)}")
        console.print(f"    drillbook plan; drillbook history; {show}")
    told = bool(rows) and all(r.mark == "as told" for r in rows)
    if interrupted:
        console.print(f"the demo was interrupted after {took:.1f}s", style="yellow")
        return
    verdict = "the story went as told" if told else "the story did NOT go as told"
    console.print(f"{verdict} in {took:.1f}s", style="green" if told else "red")


def _tags(root: Path) -> set[str]:
    """The workspace's tags; none when git cannot say."""
    from drillbook import gitops
    from drillbook.errors import DrillbookError

    try:
        return set(gitops.tags(root))
    except DrillbookError:
        return set()
