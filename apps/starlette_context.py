"""Library: starlette-context's pure ASGI `RawContextMiddleware` with its request-id plugin (and two header plugins)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette_context import context, plugins
from starlette_context.middleware import RawContextMiddleware

from apps.harness import contract
from apps.harness.contract import Triple

VARIANT = "starlette_context"


class UserIdPlugin(plugins.Plugin):
    key = contract.USER_ID_HEADER


class TenantIdPlugin(plugins.Plugin):
    key = contract.TENANT_ID_HEADER


CONTEXT_KEYS = (plugins.RequestIdPlugin.key, UserIdPlugin.key, TenantIdPlugin.key)


def current() -> Triple:
    if not context.exists():
        return contract.triple()
    return contract.triple(*(context.get(key) for key in CONTEXT_KEYS))


class AccessLogMiddleware:
    """Inside the library's middleware, where its context exists: reads it on the way in and for the audit headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        contract.observe(scope, "middleware", current())

        async def send_with_audit(message: Message) -> None:
            if message["type"] == "http.response.start":
                contract.add_audit_headers(message, current())
            await send(message)

        await self.app(scope, receive, send_with_audit)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        seen = current()
        record.request_id, record.user_id, record.tenant_id = seen["request_id"], seen["user_id"], seen["tenant_id"]
        return True


logger = contract.observed_logger(f"ctxbench.{VARIANT}", ContextFilter())


# --- Dependencies ---------------------------------------------------------------------------------
async def current_user() -> str | None:
    return context.get(UserIdPlugin.key)  # None: anonymous


async def current_tenant(request: Request, user: Annotated[str | None, Depends(current_user)]) -> str | None:
    contract.observe(request.scope, "dependency", current())
    return context.get(TenantIdPlugin.key)


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


app.add_middleware(AccessLogMiddleware)
# validate=False: RequestGuard has already validated the id against the contract's rule (and generated missing ones).
app.add_middleware(
    RawContextMiddleware, plugins=(plugins.RequestIdPlugin(validate=False), UserIdPlugin(), TenantIdPlugin())
)
app.add_middleware(contract.RequestGuard, read_entry=lambda scope: current())  # outermost
