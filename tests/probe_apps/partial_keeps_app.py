"""A stdlib-only app that keeps each request's scope object, as Sentry's isolation scope does, and reuses a stale one
(probe tests): the previous request's identity sits only inside a functools.partial's keywords, as bytes, under an
object whose repr shows none of it."""

from __future__ import annotations

import functools
from contextvars import ContextVar
from typing import Any


class Scope:
    __slots__ = ("_event_processors",)

    def __init__(self, asgi_scope: dict) -> None:
        self._event_processors = [functools.partial(annotate, asgi_scope=asgi_scope)]

    def __repr__(self) -> str:
        return "<Scope>"


def annotate(event: dict, hint: dict, asgi_scope: dict) -> dict:
    return {**event, "request": {"headers": asgi_scope["headers"]}}


current_scope: ContextVar[Scope | None] = ContextVar("current_scope", default=None)


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if current_scope.get() is None:  # a request already "in a scope" (a stale one) keeps it
        current_scope.set(Scope({"headers": list(scope["headers"])}))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
