"""A small app using loguru's `logger.contextualize()` for the user, only when the request names one (probe test)."""

from __future__ import annotations

from fastapi import FastAPI
from loguru import logger
from starlette.types import ASGIApp, Receive, Scope, Send

app = FastAPI()


class UserContext:
    """Binds the user to every log record of the request: the usual loguru pattern, skipped for anonymous requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = dict(scope.get("headers", [])).get(b"x-user-id")
        if scope["type"] != "http" or user is None:
            await self.app(scope, receive, send)
            return
        with logger.contextualize(user=user.decode()):
            await self.app(scope, receive, send)


@app.get("/")
async def root() -> dict[str, str]:
    return {"ok": "yes"}


app.add_middleware(UserContext)
