"""A stdlib-only app whose ContextVar is set at import to one dict that every request mutates (probe test: a shared
mutable object is the same object as at the baseline, and still carries one request's user into the next)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

state: ContextVar[dict[str, str]] = ContextVar("shared_state")
state.set({})  # at import: every request's context holds this very dict


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    user = dict(scope.get("headers", [])).get(b"x-user-id")
    if user is not None:
        state.get()["user"] = user.decode()
    body = state.get().get("user", "anonymous").encode()  # an anonymous request answers as the previous user
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]}
    )
    await send({"type": "http.response.body", "body": body})
