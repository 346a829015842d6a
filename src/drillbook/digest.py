"""The incident digest: what a person needs first when a run fails.

The failing check with expected and got, the newest error lines of the runbook's logs from the
run's time window, the rollback that ran or must run, who owns the change and where to page.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drillbook.model import Runbook

_ERROR_LEVELS = {"error", "critical", "fatal", "exception"}
_WARN_LEVELS = {"warning", "warn"}
_TAIL_BYTES = 256 * 1024


@dataclass(frozen=True)
class LogLine:
    """One line of a log worth showing."""

    source: str
    level: str
    text: str


def _parse_time(value: object) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


_SHOWN_FIRST = ("time", "ts", "timestamp", "level", "msg", "message")


def _compact(data: dict[str, object]) -> str:
    """A JSON log line as one readable line: time, level, message, then the other fields."""
    stamp = str(data.get("time", data.get("ts", data.get("timestamp", ""))))
    level = str(data.get("level", ""))
    message = str(data.get("msg", data.get("message", "")))
    rest = " ".join(f"{key}={value}" for key, value in data.items() if key not in _SHOWN_FIRST)
    return " ".join(part for part in (stamp, level, message, rest) if part)


def _tail_lines(path: Path) -> list[str]:
    """The last lines of a file, reading at most the last 256 KiB."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - _TAIL_BYTES))
        data = handle.read()
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if size > _TAIL_BYTES else lines


def log_lines(
    runbook: Runbook,
    root: Path,
    env: str,
    since: float,
    *,
    limit: int = 5,
    mask: Callable[[str], str] | None = None,
) -> tuple[list[LogLine], list[str]]:
    """Newest error (or, failing those, warning) lines since `since`, and the logs read.

    Each line is masked with `mask` before it is cut to 300 characters: after the cut, a
    secret across it would leave its head, which no masker knows.
    """
    found: deque[LogLine] = deque(maxlen=limit)
    warnings: deque[LogLine] = deque(maxlen=limit)
    read: list[str] = []
    for log in runbook.logs:
        where = log.where.replace("{env}", env)
        path = root / where
        if not path.is_file():
            continue
        read.append(where)
        try:
            lines = _tail_lines(path)
        except OSError:
            continue
        for raw in lines:
            level, stamp = "", None
            data: dict[str, object] = {}
            if log.format == "jsonl":
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(parsed, dict):
                    continue
                data = parsed
                level = str(data.get("level", "")).lower()
                stamp = _parse_time(data.get("time", data.get("ts", data.get("timestamp"))))
            else:
                lowered = raw.lower()
                level = next((w for w in ("error", "critical", "warning") if w in lowered), "")
            if stamp is not None and stamp < since:
                continue
            text = _compact(data) if log.format == "jsonl" else raw.strip()
            if mask is not None:
                text = mask(text)
            line = LogLine(log.name, level, text[:300])
            if level in _ERROR_LEVELS:
                found.append(line)
            elif level in _WARN_LEVELS:
                warnings.append(line)
    return (list(found) if found else list(warnings)), read
