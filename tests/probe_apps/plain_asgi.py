"""A stdlib-only ASGI app: importable by any interpreter, whatever is installed there (probe tests)."""

from __future__ import annotations

from typing import Any


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
