"""Logs for the person on call: one JSON object a line, one line per request.

Every line carries the same keys (`time`, `level`, `request_id`, `method`, `route`, `status`,
`duration_ms`, `version`, `msg`, plus a few extra ones), so a line can be filtered by level and
followed by request id with nothing but `grep` or `jq`. Settings values are never logged.
"""

from __future__ import annotations

import json
import re
import threading
import time
import traceback
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
SLOW_REQUEST_MS = 250.0
REQUEST_ID_HEADER = "X-Request-ID"
# A request id from outside is echoed into logs and headers: only plain, bounded tokens.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def iso_time(timestamp: float | None = None) -> str:
    """An ISO 8601 UTC time with milliseconds, e.g. `2025-01-06T09:00:00.000Z`."""
    moment = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonLogger:
    """Appends JSON lines to a file; safe to call from the server's worker threads."""

    def __init__(self, path: Path, *, level: str, version: str, env: str) -> None:
        self.path = path
        self.threshold = LEVELS[level]
        self.version = version
        self.env = env
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, level: str, msg: str, **fields: Any) -> None:
        """Write one line if `level` is at or above the configured level."""
        if LEVELS[level] < self.threshold:
            return
        record: dict[str, Any] = {
            "time": iso_time(),
            "level": level,
            "request_id": None,
            "method": None,
            "route": None,
            "status": None,
            "duration_ms": None,
            "version": self.version,
            "env": self.env,
            "msg": msg,
        }
        record.update(fields)
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        # Opened per line in append mode: each line is one write, and a rotated file is
        # picked up without a restart.
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)


def _where(exc: BaseException) -> str | None:
    """`file.py:LINE in function` of the frame that raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return None
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno} in {last.name}"


class RequestLogMiddleware:
    """Gives every request an id, returns it as `X-Request-ID`, and logs one line per request.

    A plain ASGI middleware (not BaseHTTPMiddleware) so that it sees the matched route and
    the final status, and turns an unhandled exception into a logged 500 with the request id.
    """

    def __init__(self, app: ASGIApp, *, logger: JsonLogger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, then write its log line."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        # Endpoints read it as request.state.request_id (the audit trail records it).
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        begin = time.perf_counter()
        error: Exception | None = None
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            error = exc
            if not started:
                response = JSONResponse(
                    {"detail": "internal server error", "request_id": request_id},
                    status_code=500,
                    headers={REQUEST_ID_HEADER: request_id},
                )
                await response(scope, receive, send)
        duration_ms = round((time.perf_counter() - begin) * 1000, 2)
        self._log_request(scope, request_id, status, duration_ms, error)
        if error is not None and started:
            # Half a response is already out; only the server can close the connection now.
            raise error

    def _log_request(
        self,
        scope: Scope,
        request_id: str,
        status: int,
        duration_ms: float,
        error: Exception | None,
    ) -> None:
        route = scope.get("route")
        path = scope.get("path", "")
        fields: dict[str, Any] = {
            "request_id": request_id,
            "method": scope.get("method"),
            # The route template groups requests (`/api/orders/{order_id}`); the path is exact.
            "route": getattr(route, "path", None) or path,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
        }
        if error is not None:
            fields.update(error_type=type(error).__name__, error=str(error), where=_where(error))
            level = "error"
            msg = f"unhandled {type(error).__name__} on {fields['route']}: {error}"
        elif status >= 500:
            level = "error"
            msg = f"{fields['method']} {path} answered {status}"
        elif duration_ms > SLOW_REQUEST_MS:
            level = "warning"
            msg = f"slow request: {duration_ms:.0f} ms, over {SLOW_REQUEST_MS:.0f} ms"
        else:
            level = "info"
            msg = f"{fields['method']} {path} {status}"
        self.logger.log(level, msg, **fields)
