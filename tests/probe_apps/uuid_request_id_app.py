"""A stdlib-only app with a request-id middleware that validates UUIDs, as asgi-correlation-id does (probe tests).

A header value that is not a UUID4 is dropped and a fresh id generated, so an identity value the probe sends reaches
the ContextVar only when it is a UUID (`--identity-format uuid`, the default).
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def is_valid_uuid4(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 4
    except ValueError:
        return False


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
    request_id.set(given if is_valid_uuid4(given) else uuid.uuid4().hex)
    body = (request_id.get() or "").encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]}
    )
    await send({"type": "http.response.body", "body": body})
