"""Seeds' recommendation: a BaseHTTPMiddleware stores the context on `request.state`; code below reads the state."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import JSONResponse, Response

from apps.harness import contract
from apps.harness.contract import Triple

VARIANT = "request_state"


def current(state: State) -> Triple:
    return contract.triple(
        getattr(state, "request_id", None), getattr(state, "user_id", None), getattr(state, "tenant_id", None)
    )


class RequestContextMiddleware(BaseHTTPMiddleware):
    """Puts the request's context on `request.state` and reads it back after the app for the audit headers."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        identity = contract.identity_of(request.scope)
        request.state.request_id = identity.request_id
        request.state.user_id = identity.user_id
        request.state.tenant_id = identity.tenant_id
        contract.observe(request.scope, "middleware", current(request.state))
        response = await call_next(request)
        contract.set_audit_headers(response.headers, current(request.state))
        return response


class ContextFilter(logging.Filter):
    """Stamps the context from the `state` a caller hands over in `extra` (a filter cannot find the request alone)."""

    def filter(self, record: logging.LogRecord) -> bool:
        seen = current(record.state) if hasattr(record, "state") else contract.triple()
        record.request_id, record.user_id, record.tenant_id = seen["request_id"], seen["user_id"], seen["tenant_id"]
        return True


logger = contract.observed_logger(f"ctxbench.{VARIANT}", ContextFilter())


# --- Dependencies ---------------------------------------------------------------------------------
async def current_user(request: Request) -> str | None:
    return getattr(request.state, "user_id", None)  # None: anonymous


async def current_tenant(request: Request, user: Annotated[str | None, Depends(current_user)]) -> str | None:
    contract.observe(request.scope, "dependency", current(request.state))
    return getattr(request.state, "tenant_id", None)


# --- Service: two calls deep, one child task, one threadpool call, one log record ------------------
def lookup_in_thread(state: State) -> Triple:
    return current(state)


async def audit_child(state: State) -> Triple:
    await asyncio.sleep(0)
    return current(state)


async def fetch_item(item_id: str, state: State) -> dict[str, Triple]:
    await asyncio.sleep(0)
    seen = current(state)
    task = await asyncio.create_task(audit_child(state))
    thread = await run_in_threadpool(lookup_in_thread, state)
    log = contract.log_and_observe(logger, "fetched item %s", item_id, state=state)
    return {"service": seen, "task": task, "thread": thread, "log": log}


async def load_item(item_id: str, fail: bool, state: State) -> dict[str, Triple]:
    await asyncio.sleep(0)
    if fail:
        raise contract.DeliberateFailure(item_id)
    return await fetch_item(item_id, state)


async def handle(request: Request, item_id: str, fail: bool, **extra: object) -> dict:
    contract.observe(request.scope, "endpoint", current(request.state))
    report = await load_item(item_id, fail, request.state)
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
app.add_middleware(
    contract.RequestGuard, read_entry=lambda scope: current(State(scope.get("state", {})))
)  # added last, so outermost
