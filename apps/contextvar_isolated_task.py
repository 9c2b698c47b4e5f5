"""contextvar_isolated's previous mechanism, kept for comparison: one `asyncio.Task` per request in a fresh Context.

Everything but the isolation is contextvar_isolated's: an outermost middleware runs the downstream in a new task
created with `context=contextvars.Context()` and awaits it. Same isolation (tests/test_isolation.py checks both), but
code below it sees that task, not the server's, as `asyncio.current_task()`, and it costs the task's creation and the
extra trips through the event loop to start it and to wake the request's task when it ends: what contextvar_isolated's
task-free mechanism removes. This variant keeps that cost measurable.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from contextvars import ContextVar
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.harness import contract
from apps.harness.contract import Triple

VARIANT = "contextvar_isolated_task"

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)
tenant_id_var: ContextVar[str | None] = ContextVar("tenant_id", default=None)


def current() -> Triple:
    return contract.triple(request_id_var.get(), user_id_var.get(), tenant_id_var.get())


class RequestContextMiddleware:
    """Sets the request's context for everything below it and reads it again for the audit headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        identity = contract.identity_of(scope)
        tokens = (
            request_id_var.set(identity.request_id),
            user_id_var.set(identity.user_id),
            tenant_id_var.set(identity.tenant_id),
        )
        contract.observe(scope, "middleware", current())

        async def send_with_audit(message: Message) -> None:
            if message["type"] == "http.response.start":
                contract.add_audit_headers(message, current())
            await send(message)

        try:
            await self.app(scope, receive, send_with_audit)
        finally:
            request_id_var.reset(tokens[0])
            user_id_var.reset(tokens[1])
            tenant_id_var.reset(tokens[2])


class FreshContextMiddleware:
    """Outermost: runs everything below it in a new, empty Context, so no request can start with another's values.

    A task is the only way to run a coroutine in a chosen Context (`asyncio.create_task(..., context=...)`).
    Awaiting it propagates its result and exceptions; cancelling this request (a client disconnect) cancels it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # the lifespan keeps its own context
            return
        await asyncio.create_task(self.app(scope, receive, send), context=contextvars.Context())


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id, record.user_id, record.tenant_id = (
            request_id_var.get(),
            user_id_var.get(),
            tenant_id_var.get(),
        )
        return True


logger = contract.observed_logger(f"ctxbench.{VARIANT}", ContextFilter())


# --- Dependencies ---------------------------------------------------------------------------------
async def current_user() -> str | None:
    return user_id_var.get()  # None: anonymous


async def current_tenant(request: Request, user: Annotated[str | None, Depends(current_user)]) -> str | None:
    contract.observe(request.scope, "dependency", current())
    return tenant_id_var.get()


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
    log = contract.log_and_observe(logger, "fetched item %s", item_id)
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
app.add_middleware(contract.RequestGuard, read_entry=lambda scope: current())
app.add_middleware(FreshContextMiddleware)  # outermost: the guard's `entry` reading already runs in the fresh Context
