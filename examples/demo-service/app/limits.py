"""A bound on request bodies: an order is a few hundred bytes, and nothing reads megabytes.

Without it a client could send a body of any size, declared or chunked, and the server would
hold all of it in memory before validation refused it; one that declares a length it never sends
would keep a worker waiting. Both are answered 413 here, before the app sees the request.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024


class BodyLimitMiddleware:
    """Reads each request's body up to `max_bytes` and passes it on; larger ones get a 413."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a body over the limit; otherwise run the request with its body read."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before it finished sending
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            # The body once, as one message; after it, the connection's own messages
            # (a disconnect), which a streaming response listens for.
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body over {self.max_bytes} bytes"},
            status_code=413,
            # The rest of the body is never read, so the connection cannot carry another request.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
