"""Pitfall from the seeds: the user ContextVar is set in the auth dependency and read by an audit BaseHTTPMiddleware."""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import JSONResponse, Response

from apps.harness import contract
from apps.harness.contract import Triple

VARIANT = "contextvar_dependency"

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)
tenant_id_var: ContextVar[str | None] = ContextVar("tenant_id", default=None)


def current() -> Triple:
    return contract.triple(request_id_var.get(), user_id_var.get(), tenant_id_var.get())


class RequestIDMiddleware(BaseHTTPMiddleware):
    """Outer layer: sets the request id for everything below it."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        token = request_id_var.set(contract.identity_of(request.scope).request_id)
        contract.observe(request.scope, "middleware", current())
        try:
            return await call_next(request)
        finally:
            request_id_var.reset(token)


class AuditMiddleware(BaseHTTPMiddleware):
    """Inner layer: writes the audit headers from what it can read once the endpoint has returned."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        contract.set_audit_headers(response.headers, current())
        return response


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
async def current_user(x_user_id: Annotated[str | None, Header()] = None) -> str | None:
    user_id_var.set(x_user_id)  # visible below this dependency, not above it
    return x_user_id  # None: anonymous


async def current_tenant(
    request: Request,
    user: Annotated[str | None, Depends(current_user)],
    x_tenant_id: Annotated[str | None, Header()] = None,
) -> str | None:
    tenant_id_var.set(x_tenant_id)
    contract.observe(request.scope, "dependency", current())
    return x_tenant_id


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


app.add_middleware(AuditMiddleware)  # inner
app.add_middleware(RequestIDMiddleware)  # outer
app.add_middleware(contract.RequestGuard, read_entry=lambda scope: current())  # outermost
