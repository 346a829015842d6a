"""The geometry of the time-to-restore chart: bars, ticks and labels for an inline SVG.

Only numbers and words are computed here; the docs template draws them, so a project's own
template can draw them differently. No chart library: a few bars need none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

WIDTH = 720
HEIGHT = 240
LEFT = 64  # room for the value labels of the y axis
RIGHT = 16
TOP = 24
BOTTOM = 44  # room for the version and date under each bar
#: The longest time to restore a bar is drawn for: a year. More is no time a journal of a real
#: rehearsal holds (a hand edit, another unit), and past 1e308 it has no axis at all.
MAX_MS = 365 * 24 * 3600 * 1000


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def axis_label(ms: float, unit: str) -> str:
    """A tick label in the chart's unit: `0 ms`, `250 ms`, `1.5 s`."""
    if unit == "s":
        return f"{ms / 1000:g} s"
    return f"{ms:g} ms"


def restore_chart(
    service: str, points: Sequence[tuple[str, str, Any, Any]]
) -> dict[str, Any] | None:
    """Bars of time to restore, oldest first; `points` are (version, when, restore_ms, outcome).

    None when no rehearsal recorded a time to restore.
    """
    data = [
        (version, stamp, float(ms), outcome)
        for version, stamp, ms, outcome in points
        if isinstance(ms, int | float) and not isinstance(ms, bool) and 0 <= ms <= MAX_MS
    ]
    if not data:
        return None
    top = _nice_ceiling(max(ms for _, _, ms, _ in data))
    unit = "s" if top >= 2000 else "ms"
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / len(data)
    bar_w = min(56.0, slot * 0.6)
    bars = []
    for i, (version, stamp, ms, outcome) in enumerate(data):
        height = plot_h * ms / top
        x = LEFT + slot * i + (slot - bar_w) / 2
        value = axis_label(round(ms), unit) if unit == "ms" else f"{ms / 1000:.1f} s"
        bars.append(
            {
                "x": round(x, 1),
                "y": round(TOP + plot_h - height, 1),
                "w": round(bar_w, 1),
                "h": round(height, 1),
                "cx": round(x + bar_w / 2, 1),
                "version": version,
                "date": stamp[:10],
                "value": value,
                "ok": outcome == "ok",
                "title": f"{version}, {stamp}: restored in {value} ({outcome or 'unknown'})",
            }
        )
    ticks = [
        {"y": round(TOP + plot_h - plot_h * f, 1), "label": axis_label(top * f, unit)}
        for f in (0, 0.25, 0.5, 0.75, 1)
    ]
    values = [ms for _, _, ms, _ in data]
    fastest, slowest = min(values), max(values)
    words = axis_label(round(fastest), "ms") if unit == "ms" else f"{fastest / 1000:.1f} s"
    words_max = axis_label(round(slowest), "ms") if unit == "ms" else f"{slowest / 1000:.1f} s"
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "base": TOP + plot_h,
        "unit": unit,
        "bars": bars,
        "ticks": ticks,
        "title": f"Time to restore {service} across {len(data)} rehearsal"
        + ("s" if len(data) != 1 else ""),
        "desc": (
            f"From {words} to {words_max}; the newest rehearsal, of {data[-1][0]}, "
            f"restored in {bars[-1]['value']}."
            if len(data) > 1
            else f"One rehearsal, of {data[0][0]}, restored in {bars[0]['value']}."
        ),
    }
