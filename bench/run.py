"""Run drillbook's benchmarks: every figure, or some, in full or quick mode.

    python bench/run.py [--quick] [--only NAME ...] [--no-scale] [--out DIR]
    invoke bench [--quick] [--only NAME]

Each figure is a ratio against a baseline measured in the same session (see `harness.py`); the
table, the scale series and the machine are printed, and written as JSON to `bench/out/`. Speed
is never asserted: the exit code is 1 only when a figure could not be measured at all.
"""

from __future__ import annotations

import argparse
import compileall
import sys
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_check
import bench_checks
import bench_docs
import bench_journal
import bench_process
import bench_ready
import bench_release
import bench_startup
import bench_steps
import harness
from harness import Result, Scale, Settings

#: Every figure module, in the order of the issue's table.
FIGURES: dict[str, ModuleType] = {
    "startup": bench_startup,
    "check": bench_check,
    "steps": bench_steps,
    "release": bench_release,
    "checks": bench_checks,
    "docs": bench_docs,
    "ready": bench_ready,
    "journal": bench_journal,
    "process": bench_process,
}


def prepare() -> None:
    """Cache drillbook's bytecode, as installing the wheel does.

    An editable install run with PYTHONDONTWRITEBYTECODE (as this repository's shells set it)
    would otherwise compile every module on every start, a cost no installed drillbook pays.
    """
    import drillbook

    compileall.compile_dir(Path(drillbook.__file__).parent, quiet=1)


def run_figures(
    settings: Settings, only: list[str] | None = None
) -> tuple[list[Result], list[Scale], list[str]]:
    """Measure the figures named (all by default); also the names of those that failed."""
    results: list[Result] = []
    scales: list[Scale] = []
    failed: list[str] = []
    for name in only or list(FIGURES):
        started = time.perf_counter()
        try:
            got, more = FIGURES[name].figures(settings)
        except (harness.BenchError, OSError) as exc:
            print(f"  {name}: could not be measured: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        results.extend(got)
        scales.extend(more)
        harness.write_json(name, got, more, settings=settings)
        print(f"  ({name}: {time.perf_counter() - started:.0f} s)", flush=True)
    return results, scales, failed


def main(argv: list[str] | None = None) -> int:
    """The command line; 0 unless a figure could not be measured."""
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs, small sizes: CI")
    parser.add_argument(
        "--only", action="append", choices=list(FIGURES), help="this figure (repeatable)"
    )
    parser.add_argument("--no-scale", action="store_true", help="skip the scale series")
    parser.add_argument("--out", type=Path, default=harness.OUT, help="where the JSON goes")
    args = parser.parse_args(argv)
    settings = Settings(quick=args.quick, scale=not args.no_scale, out=args.out)
    prepare()
    machine = harness.machine()
    mode = "quick" if settings.quick else "full"
    print(
        f"drillbook benchmarks ({mode}): {machine['nproc']} CPUs, {machine['cpu']}, "
        f"Python {machine['python']}, {machine['os']}, load {machine['loadavg']}",
        flush=True,
    )
    results, scales, failed = run_figures(settings, args.only)
    print()
    print(harness.table(results))
    if scales:
        print()
        print(harness.scale_table(scales))
    if not args.only:
        path = harness.write_json("all", results, scales, settings=settings)
        print(f"\nwrote {path}")
    if failed:
        print(f"not measured: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
