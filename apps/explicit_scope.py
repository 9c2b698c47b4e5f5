"""Explicit passing, the context built once from the scope: one dependency reads the identity as the middlewares do."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.harness import contract
from apps.harness.contract import Triple

VARIANT = "explicit_scope"
HANDBACK_SCOPE_KEY = "explicit_scope.handback"


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    user_id: str | None
    tenant_id: str | None

    def seen(self) -> Triple:
        return contract.triple(self.request_id, self.user_id, self.tenant_id)


@dataclass(slots=True)
class Handback:
    """The slot the audit layer passes down (in the ASGI call's scope) for the app to return its context in."""

    context: RequestContext | None = None

    def seen(self) -> Triple:
        return self.context.seen() if self.context else contract.triple()


class AuditMiddleware:
    """Holds no context; it reads the request it is handed, and the context the app hands back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handback = Handback()
        scope[HANDBACK_SCOPE_KEY] = handback
        contract.observe(scope, "middleware", contract.identity_of(scope).as_triple())

        async def send_with_audit(message: Message) -> None:
            if message["type"] == "http.response.start":
                contract.add_audit_headers(message, handback.seen())
            await send(message)

        await self.app(scope, receive, send_with_audit)


class ContextFilter(logging.Filter):
    """Stamps the context object the caller hands over in `extra`."""

    def filter(self, record: logging.LogRecord) -> bool:
        seen = record.ctx.seen() if hasattr(record, "ctx") else contract.triple()
        record.request_id, record.user_id, record.tenant_id = seen["request_id"], seen["user_id"], seen["tenant_id"]
        return True


logger = contract.observed_logger(f"ctxbench.{VARIANT}", ContextFilter())


# --- Dependencies ---------------------------------------------------------------------------------
async def request_context(request: Request) -> RequestContext:
    # Read once from the scope, as the ContextVar middlewares read it: no Header() parameters, so FastAPI validates
    # nothing here; the headers are the ones RequestGuard validated at entry.
    identity = contract.identity_of(request.scope)
    ctx = RequestContext(identity.request_id, identity.user_id, identity.tenant_id)
    request.scope[HANDBACK_SCOPE_KEY].context = ctx
    return ctx


# Two dependencies, one resolved inside the other, as in every variant (baseline: current_user inside current_tenant).
async def current_context(request: Request, ctx: Annotated[RequestContext, Depends(request_context)]) -> RequestContext:
    contract.observe(request.scope, "dependency", ctx.seen())
    return ctx


# --- Service: two calls deep, one child task, one threadpool call, one log record ------------------
def lookup_in_thread(ctx: RequestContext) -> Triple:
    return ctx.seen()


async def audit_child(ctx: RequestContext) -> Triple:
    await asyncio.sleep(0)
    return ctx.seen()


async def fetch_item(item_id: str, ctx: RequestContext) -> dict[str, Triple]:
    await asyncio.sleep(0)
    seen = ctx.seen()
    task = await asyncio.create_task(audit_child(ctx))
    thread = await run_in_threadpool(lookup_in_thread, ctx)
    log = contract.log_and_observe(logger, "fetched item %s", item_id, ctx=ctx)
    return {"service": seen, "task": task, "thread": thread, "log": log}


async def load_item(item_id: str, fail: bool, ctx: RequestContext) -> dict[str, Triple]:
    await asyncio.sleep(0)
    if fail:
        raise contract.DeliberateFailure(item_id)
    return await fetch_item(item_id, ctx)


async def handle(request: Request, item_id: str, fail: bool, ctx: RequestContext, **extra: object) -> dict:
    contract.observe(request.scope, "endpoint", ctx.seen())
    report = await load_item(item_id, fail, ctx)
    return contract.item_body(VARIANT, item_id, request.scope, report, **extra)


# --- App ------------------------------------------------------------------------------------------
app = FastAPI(title=VARIANT)
Context = Annotated[RequestContext, Depends(current_context)]


@app.get("/items/{item_id}")
async def get_item(item_id: str, request: Request, ctx: Context, fail: bool = False) -> Response:
    return JSONResponse(await handle(request, item_id, fail, ctx))


@app.post("/items/{item_id}")
async def post_item(item_id: str, request: Request, ctx: Context, fail: bool = False) -> Response:
    size = await contract.read_body_size(request)
    if size is None:
        return contract.body_too_large_response()
    return JSONResponse(await handle(request, item_id, fail, ctx, body_bytes=size))


@app.get("/stream/{item_id}")
async def stream_item(item_id: str, request: Request, ctx: Context, fail: bool = False) -> Response:
    return contract.streamed_json(await handle(request, item_id, fail, ctx))


@app.get("/healthz")
async def healthz() -> Response:
    return contract.health_response()


app.add_middleware(AuditMiddleware)
app.add_middleware(contract.RequestGuard, read_entry=lambda scope: contract.triple())  # outermost
