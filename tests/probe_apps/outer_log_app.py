"""A stdlib-only app whose outer access-log middleware reads the request id before the app runs each request in a
fresh Context (probe test: the stale value that outer code reads is a finding, not an unused stale context)."""

from __future__ import annotations

import asyncio
import contextvars
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str | None] = ContextVar("outer_request_id", default=None)
access_log: list[str | None] = []  # what the access log printed: on a pipelined connection, the previous request's id


async def handler(scope: dict, receive: Any, send: Any) -> None:
    given = dict(scope.get("headers", [])).get(b"x-user-id")
    if given is not None:
        request_id.set(given.decode())  # set in the fresh Context; the server copies it into the next request's task
    body = b"ok"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": body})


async def isolating(scope: dict, receive: Any, send: Any) -> None:
    await asyncio.create_task(handler(scope, receive, send), context=contextvars.Context())


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    access_log.append(request_id.get())  # outside the fresh Context: sees what the server handed over
    del access_log[:-10]
    await isolating(scope, receive, send)
