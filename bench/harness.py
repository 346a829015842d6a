"""The one harness every figure of `bench/` uses: timing, alternation, medians, spread, output.

A figure is a ratio: a subject (drillbook doing something) against a baseline (the floor for the
same work: libyaml alone, make, a bare `requests.Session`, ...) measured in the same session,
the runs of each side alternated so that a noisy machine hurts both alike. Absolute times are
printed and written, never asserted; the goal of a figure is on the ratio of the medians.

    sides = {"baseline": process([...]), "subject": process([...])}
    samples = measure(sides, runs=settings.runs(15, 3))
    result = Result("start-up", samples["subject"], samples["baseline"], goal=Goal("<=", 1.3))
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BIN = Path(sys.executable).parent
OUT = BENCH / "out"

#: A side of a figure: one call runs it once and returns the seconds it took.
Runner = Callable[[], float]

#: The environment of every timed process. Without PYTHONDONTWRITEBYTECODE: a user's installed
#: drillbook has its bytecode cached (pip compiles the wheel), so the warm-up run may cache it
#: here too; a source checkout with that variable set recompiles every module on every start
#: (~25 ms of `drillbook --help`), which is not what anyone pays.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


# --- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How hard to measure: `quick` (CI, seconds) or full (people, minutes)."""

    quick: bool = False
    scale: bool = True
    out: Path = OUT

    def runs(self, full: int, quick: int = 3) -> int:
        """Timed runs of each side."""
        return quick if self.quick else full

    def pick(self, full: Any, quick: Any) -> Any:
        """A size or count for this mode."""
        return quick if self.quick else full


# --- timing ------------------------------------------------------------------------------------


class BenchError(RuntimeError):
    """A side did not do its work (a non-zero exit, a failed check): its time means nothing."""


def drillbook_script() -> str:
    """The venv's `drillbook` console script, the way a user starts it."""
    script = BIN / "drillbook"
    if not script.exists():
        msg = f"no drillbook console script next to {sys.executable}; pip install -e . first"
        raise BenchError(msg)
    return str(script)


def process(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    before: Callable[[], object] | None = None,
    ok: Sequence[int] = (0,),
) -> Runner:
    """A side that runs one whole process, timed from the fork to the exit.

    `before` runs untimed first (to reset the world, e.g. delete the tag a release made).
    Output is captured (both sides pay for the pipe alike) and shown when the exit is not ok.
    """
    argv = [str(a) for a in argv]
    full_env = {**CHILD_ENV, **(env or {})}

    def run() -> float:
        if before is not None:
            before()
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode not in ok:
            msg = (
                f"{' '.join(argv[:4])} ... exited {done.returncode}:\n"
                f"{done.stdout.decode(errors='replace')[-1500:]}"
                f"{done.stderr.decode(errors='replace')[-1500:]}"
            )
            raise BenchError(msg)
        return elapsed

    return run


def timed(fn: Callable[[], object], *, before: Callable[[], object] | None = None) -> Runner:
    """A side that calls `fn` in this process; `before` runs untimed first."""

    def run() -> float:
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return run


def measure(sides: Mapping[str, Runner], *, runs: int, warmup: int = 1) -> dict[str, Samples]:
    """Run every side `runs` times, alternated, after `warmup` untimed rounds.

    The order turns around every round (a b c, c b a, a b c, ...) so no side always runs right
    after another, which would hand it that side's warm caches or its leftover load.
    """
    names = list(sides)
    for _ in range(warmup):
        for name in names:
            sides[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs):
        for name in names if round_ % 2 == 0 else reversed(names):
            times[name].append(sides[name]())
    return {name: Samples(name, values) for name, values in times.items()}


# --- statistics --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Samples:
    """The seconds of every timed run of one side."""

    name: str
    times: list[float]

    @property
    def median(self) -> float:
        """The median run."""
        return statistics.median(self.times)

    @property
    def low(self) -> float:
        """The fastest run."""
        return min(self.times)

    @property
    def high(self) -> float:
        """The slowest run."""
        return max(self.times)

    @property
    def iqr(self) -> tuple[float, float]:
        """The first and third quartiles (the min and max with fewer than 4 runs)."""
        if len(self.times) < 4:
            return self.low, self.high
        q = statistics.quantiles(self.times, n=4, method="inclusive")
        return q[0], q[2]

    def scaled(self, factor: float, name: str | None = None) -> Samples:
        """The same runs with every time multiplied (e.g. by 1/events, for a cost per event)."""
        return Samples(name or self.name, [t * factor for t in self.times])


@dataclass(frozen=True)
class Goal:
    """What the ratio should be: `<= 1.3` (x the baseline) or `>= 0.8`."""

    op: str
    value: float

    def met(self, ratio: float) -> bool:
        """Whether the ratio is within the goal."""
        return ratio <= self.value if self.op == "<=" else ratio >= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}x"


@dataclass
class Result:
    """One figure: subject against baseline, their medians, spreads and ratio.

    `throughput`: the ratio is the subject's throughput over the baseline's (baseline time over
    subject time), so higher is better; otherwise it is subject time over baseline time.
    `unit` and `per` say how times are shown: `per` items in each run gives a time per item.
    """

    figure: str
    subject: Samples
    baseline: Samples
    goal: Goal | None = None
    throughput: bool = False
    per: int = 1
    per_unit: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """The ratio of the medians (see `throughput`)."""
        a, b = self.subject.median, self.baseline.median
        return b / a if self.throughput else a / b

    @property
    def pair_ratios(self) -> list[float]:
        """The ratio of each alternated pair of runs: its spread is the figure's spread."""
        pairs = zip(self.subject.times, self.baseline.times, strict=False)
        return [b / a if self.throughput else a / b for a, b in pairs]

    @property
    def ratio_spread(self) -> tuple[float, float]:
        """The interquartile range of the pairwise ratios (min-max with fewer than 4 runs)."""
        ratios = self.pair_ratios
        if len(ratios) < 4:
            return min(ratios), max(ratios)
        q = statistics.quantiles(ratios, n=4, method="inclusive")
        return q[0], q[2]

    @property
    def met(self) -> bool | None:
        """Whether the goal is met; None when the figure is reported only."""
        return None if self.goal is None else self.goal.met(self.ratio)

    def as_dict(self) -> dict[str, Any]:
        """The figure as JSON data."""
        return {
            "figure": self.figure,
            "subject": self.subject.name,
            "baseline": self.baseline.name,
            "runs": len(self.subject.times),
            "subject_s": self.subject.times,
            "baseline_s": self.baseline.times,
            "subject_median_s": self.subject.median,
            "baseline_median_s": self.baseline.median,
            "per": self.per,
            "per_unit": self.per_unit,
            "ratio": self.ratio,
            "ratio_iqr": list(self.ratio_spread),
            "throughput": self.throughput,
            "goal": str(self.goal) if self.goal else None,
            "met": self.met,
            "note": self.note,
            **self.extra,
        }


def fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least squares `y = slope * x + intercept`; also r squared."""
    slope, intercept = statistics.linear_regression(xs, ys)
    mean = statistics.fmean(ys)
    total = sum((y - mean) ** 2 for y in ys)
    left = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys, strict=True))
    return slope, intercept, 1.0 - left / total if total else 1.0


@dataclass
class Scale:
    """One subject timed at several sizes (runbooks, changes), with its baseline where any."""

    figure: str
    unit: str
    sizes: list[int]
    subject: list[Samples]
    baseline: list[Samples] | None = None
    baseline_name: str = ""

    def slope(self, which: str = "subject") -> tuple[float, float, float]:
        """ms per unit, intercept in ms and r squared, from the medians."""
        rows = self.subject if which == "subject" else (self.baseline or [])
        slope, intercept, r2 = fit(self.sizes, [s.median * 1000 for s in rows])
        return slope, intercept, r2

    def as_dict(self) -> dict[str, Any]:
        """The scale as JSON data."""
        out: dict[str, Any] = {
            "figure": self.figure,
            "unit": self.unit,
            "sizes": self.sizes,
            "subject_median_s": [s.median for s in self.subject],
            "subject_s": [s.times for s in self.subject],
            "slope_ms_per_unit": self.slope()[0],
            "intercept_ms": self.slope()[1],
            "r2": self.slope()[2],
        }
        if self.baseline:
            out["baseline"] = self.baseline_name
            out["baseline_median_s"] = [s.median for s in self.baseline]
            out["baseline_slope_ms_per_unit"] = self.slope("baseline")[0]
        return out


# --- output ------------------------------------------------------------------------------------


def seconds(value: float) -> str:
    """A time as a person reads it: `312 ms`, `1.84 s`, `45.2 us`."""
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.1f} us"


def _median_cell(samples: Samples, per: int, per_unit: str) -> str:
    lo, hi = samples.iqr
    text = f"{seconds(samples.median)} ({seconds(lo)}-{seconds(hi)})"
    if per > 1:
        text += f"; {seconds(samples.median / per)}/{per_unit}"
    return text


HEADER = ("figure", "subject median (IQR)", "baseline", "baseline median (IQR)", "ratio (IQR)")
HEADER_TAIL = ("goal", "met")


def row(result: Result) -> list[str]:
    """One table row of a figure."""
    lo, hi = result.ratio_spread
    kind = " thr." if result.throughput else ""
    met = {True: "yes", False: "**no**", None: "reported"}[result.met]
    return [
        result.figure,
        _median_cell(result.subject, result.per, result.per_unit),
        result.baseline.name,
        _median_cell(result.baseline, result.per, result.per_unit),
        f"{result.ratio:.2f}x{kind} ({lo:.2f}-{hi:.2f})",
        str(result.goal) if result.goal else "-",
        met,
    ]


def table(results: Sequence[Result]) -> str:
    """The figures as a Markdown table."""
    head = [*HEADER, *HEADER_TAIL]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(row(r)) + " |" for r in results]
    return "\n".join(lines)


def scale_table(scales: Sequence[Scale]) -> str:
    """The scale figures as a Markdown table, with the least-squares slope of each."""
    head = ["figure", "size", "subject median (min-max)", "baseline median", "ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for sc in scales:
        for i, size in enumerate(sc.sizes):
            base = sc.baseline[i] if sc.baseline else None
            lines.append(
                f"| {sc.figure} | {size:,} {sc.unit} | {seconds(sc.subject[i].median)} "
                f"({seconds(sc.subject[i].low)}-{seconds(sc.subject[i].high)}) | "
                + (f"{seconds(base.median)} ({sc.baseline_name})" if base else "-")
                + " | "
                + (f"{sc.subject[i].median / base.median:.2f}x" if base else "-")
                + " |"
            )
        slope, intercept, r2 = sc.slope()
        one = sc.unit.removesuffix("s")
        text = f"slope {slope:.3f} ms/{one}, intercept {intercept:.0f} ms, r² {r2:.4f}"
        if sc.baseline:
            text += f"; baseline slope {sc.slope('baseline')[0]:.3f} ms/{one}"
        lines.append(f"| {sc.figure} | fit | {text} | | |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pretty = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip('"') + f" ({platform.release()})"
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": pretty,
        "loadavg": list(load) if load else None,
    }


def write_json(
    name: str,
    results: Sequence[Result],
    scales: Sequence[Scale] = (),
    *,
    settings: Settings,
) -> Path:
    """Write the figures to `bench/out/NAME.json` (the folder is made as needed)."""
    settings.out.mkdir(parents=True, exist_ok=True)
    path = settings.out / f"{name}.json"
    payload = {
        "machine": machine(),
        "quick": settings.quick,
        "figures": [r.as_dict() for r in results],
        "scale": [s.as_dict() for s in scales],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def report(result: Result) -> None:
    """Print one figure as it is measured: the sides, the ratio and the goal."""
    lo, hi = result.ratio_spread
    verdict = {True: "met", False: "OFF GOAL", None: "reported"}[result.met]
    goal = f"goal {result.goal}: {verdict}" if result.goal else "reported"
    print(f"  {result.figure}")
    for samples in (result.subject, result.baseline):
        print(f"    {samples.name:<44} {_median_cell(samples, result.per, result.per_unit)}")
    kind = " (throughput)" if result.throughput else ""
    print(f"    ratio{kind} {result.ratio:.2f}x (IQR {lo:.2f}-{hi:.2f}); {goal}", flush=True)


# --- a loopback HTTP service, in a process of its own ------------------------------------------


@contextlib.contextmanager
def http_server(slow_ms: int = 20) -> Iterator[str]:
    """A tiny threaded HTTP server on 127.0.0.1 in a separate process; yields its base URL.

    A process of its own, so its work does not share the GIL with the client being measured.
    `/health` and `/version` answer JSON at once, `/slow...` after `slow_ms`.
    """
    server = subprocess.Popen(
        [sys.executable, str(BENCH / "http_server.py"), str(slow_ms)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        if not line.startswith("http://"):
            msg = f"the bench HTTP server did not start: {line!r}"
            raise BenchError(msg)
        yield line
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- running one figure module on its own -----------------------------------------------------

Figures = Callable[[Settings], "tuple[list[Result], list[Scale]]"]


def standalone(name: str, figures: Figures, argv: Sequence[str] | None = None) -> int:
    """`python bench/bench_X.py [--quick] [--no-scale]`: one module's figures, table and JSON."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"bench/{name}.py")
    parser.add_argument("--quick", action="store_true", help="few runs, small sizes (CI)")
    parser.add_argument("--no-scale", action="store_true", help="skip the scale series")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    args = parser.parse_args(argv)
    settings = Settings(quick=args.quick, scale=not args.no_scale, out=args.out)
    results, scales = figures(settings)
    print()
    print(table(results))
    if scales:
        print()
        print(scale_table(scales))
    print(f"\nwrote {write_json(name, results, scales, settings=settings)}")
    return 0
