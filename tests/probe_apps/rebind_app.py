"""A stdlib-only app that clears and rebinds its logging context at the top of every request, as structlog's
`clear_contextvars()` + `bind_contextvars()` middleware does: a stale value is replaced before anything reads it."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

log_context: ContextVar[dict | None] = ContextVar("log_context", default=None)


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    log_context.set(None)  # clear
    log_context.set({"path": scope["path"], "request_id": dict(scope["headers"]).get(b"x-request-id")})  # rebind
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
