"""Recommended: contextvar_asgi's ContextVars behind an outermost middleware that runs each request in a fresh Context.

What the isolation keeps and drops (measured by the tests and the leak hunt, see docs/fix.md):
- Every request starts downstream in an empty `contextvars.Context()`, exactly as uvicorn's `--reset-contextvars`
  does, but in the app, so it holds on any server: whatever context the server created the request's task in
  (the previous request's, on a pipelined or resumed connection), nothing of it is visible.
- Dropped: values `.set()` at import time or in the lifespan (a ContextVar's *default* is not in any Context and is
  kept). Libraries that keep per-request state in ContextVars (Sentry's scopes, OpenTelemetry's current context,
  loguru's `contextualize`) see what they see on a fresh connection: their process-wide configuration lives in
  module globals, not in the Context, and is kept.
- Cost: no task, no extra trip through the event loop: the downstream runs in the request's own task, each of its
  steps inside the fresh Context (`in_context`). contextvar_isolated_task keeps the previous mechanism (one task per
  request) measurable; both are measured in-process (paired, instructions) and under load.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import types
from collections.abc import Coroutine, Generator
from contextvars import ContextVar
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.harness import contract
from apps.harness.contract import Triple

VARIANT = "contextvar_isolated"
T = TypeVar("T")

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


_NOTHING = object()
_NONES = itertools.repeat(None)  # endless and stateless: one for every request


@types.coroutine
def in_context(coro: Coroutine[Any, Any, T], context: contextvars.Context) -> Generator[Any, Any, T]:
    """Runs a coroutine to its end in the awaiting task, every step of it inside `context`.

    Why it works: a coroutine's code runs only inside its `send` and `throw` calls, and sees the context current during
    that call: for its ContextVars and for the copy that `create_task`, `run_in_threadpool` and anyio take. A Task makes
    those calls inside its own context; here each one is made inside `context`, from the task's own step, so no task is
    created. The rest passes through untouched: what the coroutine yields (a Future, or None for `sleep(0)`) reaches
    the task as is, so the task waits on that future and `cancel()` finds it; what the task throws in (a
    CancelledError included) goes into the coroutine, which cleans up and re-raises. `current_task()` is the request's.

    Why a `map`: each step is `context.run(coro.send, None)` made by map's C code (`yield from` resumes it without
    running a line of Python), and the coroutine's return value arrives in the StopIteration that ends the map. Only a
    throw (a cancellation) takes the Python path below. asyncio's tasks (uvloop's too) resume with `send(None)`; a loop
    that sends values (trio) is not supported: the send fails with AttributeError inside the request.
    """
    steps = map(context.run, itertools.repeat(coro.send), _NONES)
    handed = _NOTHING  # what the coroutine yielded when an exception was thrown into it: the task gets it first
    while True:
        try:
            if handed is not _NOTHING:
                yielded, handed = handed, _NOTHING
                yield yielded
            return (yield from steps)
        except BaseException as error:
            if coro.cr_frame is None:  # the coroutine raised it and has ended: out, with its traceback
                raise
            if isinstance(error, GeneratorExit):  # the request was closed: the downstream's cleanup, in its context
                context.run(coro.close)
                raise
            try:  # thrown in by the task (a CancelledError, an exception a future ended with): the coroutine decides
                handed = context.run(coro.throw, error)
            except StopIteration as done:
                return done.value


class FreshContextMiddleware:
    """Outermost: runs everything below it in a new, empty Context, so no request can start with another's values."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # the lifespan keeps its own context
            return
        context = contextvars.Context()
        await in_context(context.run(self.app, scope, receive, send), context)


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
