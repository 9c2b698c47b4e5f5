"""Library: loguru's `logger.contextualize()` in a pure ASGI middleware, and a sink that captures each record's extra.

Does more work than the others: every log call builds a loguru record and runs the sink.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from loguru import logger
from loguru._logger import context as loguru_context
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.harness import contract
from apps.harness.contract import Triple

VARIANT = "loguru_contextualize"


def current() -> Triple:
    # What `contextualize()` holds right now: loguru has no public getter, and this ContextVar is exactly what every
    # record's `extra` is built from (`{**core.extra, **context.get(), **bound}`).
    extra = loguru_context.get()
    return contract.triple(extra.get("request_id"), extra.get("user_id"), extra.get("tenant_id"))


def contextualize_request(scope: Scope) -> AbstractContextManager[None]:
    """The request's fields for every log line below; the user only when the request is authenticated."""
    identity = contract.identity_of(scope)
    fields: dict[str, Any] = {"request_id": identity.request_id}
    if identity.tenant_id is not None:
        fields["tenant_id"] = identity.tenant_id
    if identity.user_id is not None:
        fields["user_id"] = identity.user_id
    return logger.contextualize(**fields)


class RequestContextMiddleware:
    """Contextualizes every log line of the request and reads the context again for the audit headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with contextualize_request(scope):
            contract.observe(scope, "middleware", current())

            async def send_with_audit(message: Message) -> None:
                if message["type"] == "http.response.start":
                    contract.add_audit_headers(message, current())
                await send(message)

            await self.app(scope, receive, send_with_audit)


# --- Logging: a sink that captures what a record carries ------------------------------------------
def capture(message: Any) -> None:
    """The sink: where a real service writes JSON lines, this one hands the record's fields to the caller's slot."""
    extra = message.record["extra"]
    slot: Callable[[Triple], None] | None = extra.get("observation")
    if slot is not None:
        slot(contract.triple(extra.get("request_id"), extra.get("user_id"), extra.get("tenant_id")))


logger.remove()  # loguru's default stderr handler: this service's log lines go to the sink alone
logger.add(capture, level="INFO", format="{message}", catch=False)


def log_and_observe(message: str, *args: object) -> Triple:
    """Emit one log line and return the fields the sink captured on it."""
    seen: Triple = contract.triple()
    logger.bind(observation=seen.update).info(message, *args)
    return seen


# --- Dependencies ---------------------------------------------------------------------------------
async def current_user() -> str | None:
    return current()["user_id"]  # None: anonymous


async def current_tenant(request: Request, user: Annotated[str | None, Depends(current_user)]) -> str | None:
    contract.observe(request.scope, "dependency", current())
    return current()["tenant_id"]


# --- Service: two calls deep, one child task, one threadpool call, one log record ------------------
def lookup_in_thread() -> Triple:
    return current()


async def audit_child() -> Triple:
    await asyncio.sleep(0)
    return current()


async def fetch_item(item_id: str) -> dict[str, Triple]:
    await asyncio.sleep(0)
    seen = current()
    task = await asyncio.create_task(audit_child())
    thread = await run_in_threadpool(lookup_in_thread)
    log = log_and_observe("fetched item {}", item_id)
    return {"service": seen, "task": task, "thread": thread, "log": log}


async def load_item(item_id: str, fail: bool) -> dict[str, Triple]:
    await asyncio.sleep(0)
    if fail:
        raise contract.DeliberateFailure(item_id)
    return await fetch_item(item_id)


async def handle(request: Request, item_id: str, fail: bool, **extra: object) -> dict:
    contract.observe(request.scope, "endpoint", current())
    report = await load_item(item_id, fail)
    return contract.item_body(VARIANT, item_id, request.scope, report, **extra)


# --- App ------------------------------------------------------------------------------------------
app = FastAPI(title=VARIANT)
Tenant = Annotated[str | None, Depends(current_tenant)]


@app.get("/items/{item_id}")
async def get_item(item_id: str, request: Request, tenant: Tenant, fail: bool = False) -> Response:
    return JSONResponse(await handle(request, item_id, fail))


@app.post("/items/{item_id}")
async def post_item(item_id: str, request: Request, tenant: Tenant, fail: bool = False) -> Response:
    size = await contract.read_body_size(request)
    if size is None:
        return contract.body_too_large_response()
    return JSONResponse(await handle(request, item_id, fail, body_bytes=size))


@app.get("/stream/{item_id}")
async def stream_item(item_id: str, request: Request, tenant: Tenant, fail: bool = False) -> Response:
    return contract.streamed_json(await handle(request, item_id, fail))


@app.get("/healthz")
async def healthz() -> Response:
    return contract.health_response()


app.add_middleware(RequestContextMiddleware)
app.add_middleware(contract.RequestGuard, read_entry=lambda scope: current())  # outermost
