"""A stdlib-only app whose module global is a request proxy (its `__class__` raises outside a request) and whose
set-only ContextVar lives in an instance, not a module global (probe test: the sentinel's bookkeeping must not fail)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any


class RequestProxy:
    """Like werkzeug's LocalProxy: `isinstance(proxy, dict)` asks `__class__`, which raises without a request."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("working outside of request context")


class Store:
    def __init__(self) -> None:
        self.user: ContextVar[str | None] = ContextVar("proxied_user", default=None)


current_request = RequestProxy()
store = Store()


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    user = dict(scope.get("headers", [])).get(b"x-user-id")
    if user is not None:
        store.user.set(user.decode())  # set only when the request names a user, never cleared
    body = (store.user.get() or "anonymous").encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]}
    )
    await send({"type": "http.response.body", "body": body})
