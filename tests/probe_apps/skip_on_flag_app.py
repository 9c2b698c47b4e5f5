"""A stdlib-only app whose middleware skips its own setup when a flag says it already ran, as Sentry's ASGI middleware
does with `sentry_asgi_middleware_applied`: on a stale flag the whole request runs with the previous request's scope."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

applied: ContextVar[bool] = ContextVar("middleware_applied", default=False)
request_scope: ContextVar[dict | None] = ContextVar("request_scope", default=None)


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if not applied.get():  # "nested": an outer copy of this middleware set the request's scope already
        applied.set(True)
        request_scope.set({"path": scope["path"], "headers": list(scope["headers"])})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
