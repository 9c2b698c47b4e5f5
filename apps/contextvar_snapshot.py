"""Recommended: one outermost middleware runs each request in a copy of the Context the app started with.

What it keeps and drops (measured by the tests and the leak hunt, see docs/fix.md):
- Kept: everything the app set before its first request (a ContextVar `.set()` at import, decimal precision through
  `getcontext()`, structlog's global binds, a Sentry startup tag): each request starts in a copy of the Context
  taken once, when the server first calls the app (its lifespan startup, or its first request when it runs no
  lifespan): what a request on a fresh connection of a freshly started server sees. CPython's fix for the read
  path (python/cpython PR 141158, 3.15) takes the same way: an asyncio Server runs connections in a copy of the
  context it was created in.
- Dropped: everything any other request set, whatever context the server started this request in (the previous
  request's, on a pipelined or resumed connection), because nothing of the server's context is used.
- The request's own values are set inside its copy, so nothing needs a `reset()`: the copy is dropped with the
  request. One layer (no second middleware, no task): the downstream runs in the request's own task, each step of
  it inside the copy (`in_context`), so child tasks and the threadpool copy the request's values, exceptions and
  cancellations pass through, and `asyncio.current_task()` is the server's task for the request.
- Any event loop: on asyncio (and uvloop) the steps are C calls (`in_context`); on a loop that sends values into
  coroutines (trio, hypercorn's trio worker) each step goes through `in_context_any_loop`, chosen once at startup.
- It must be outermost: code that runs before it (an outer middleware) runs in the server's context.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import types
from collections.abc import Callable, Coroutine, Generator
from contextvars import ContextVar
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.harness import contract
from apps.harness.contract import Triple

VARIANT = "contextvar_snapshot"
T = TypeVar("T")
Driver = Callable[[Coroutine[Any, Any, Any], contextvars.Context], Any]

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)
tenant_id_var: ContextVar[str | None] = ContextVar("tenant_id", default=None)


def current() -> Triple:
    return contract.triple(request_id_var.get(), user_id_var.get(), tenant_id_var.get())


_NOTHING = object()
_NONES = itertools.repeat(None)  # endless and stateless: one for every request


@types.coroutine
def in_context(coro: Coroutine[Any, Any, T], context: contextvars.Context) -> Generator[Any, Any, T]:
    """Runs a coroutine to its end in the awaiting task, every step of it inside `context` (asyncio and uvloop).

    A coroutine's code runs only inside its `send` and `throw` calls and sees the context current during that call;
    here each call is made inside `context`, from the task's own step. Each step is `context.run(coro.send, None)`,
    made by map's C code (asyncio's tasks resume with `send(None)`); only a throw (a cancellation) takes the Python
    path below. What the coroutine yields reaches the task as is, so the task waits on that future and `cancel()`
    finds it.
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


@types.coroutine
def in_context_any_loop(coro: Coroutine[Any, Any, T], context: contextvars.Context) -> Generator[Any, Any, T]:
    """The same for any event loop: every value the loop sends in (trio sends its traps' outcomes) reaches the
    coroutine, each step in Python."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            yielded = context.run(coro.send, value) if error is None else context.run(coro.throw, error)
        except StopIteration as done:
            return done.value
        value, error = None, None
        try:
            value = yield yielded
        except GeneratorExit:
            context.run(coro.close)
            raise
        except BaseException as thrown:
            error = thrown


def driver_for_this_loop() -> Driver:
    """`in_context` under asyncio (uvloop included), else the one that passes sent values on."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return in_context_any_loop
    return in_context


class SnapshotContextMiddleware:
    """Outermost: each request runs in a copy of the startup Context, with its own values set inside the copy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Starlette builds its middleware stack at the app's first call (the lifespan's startup, or the first request
        # before any of it runs): the Context the app started with, before any request could set anything.
        self.startup = contextvars.copy_context()
        self.drive = driver_for_this_loop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # the lifespan keeps its own context
            return
        context = self.startup.copy()
        entry = context.run(current)
        try:
            identity = contract.parse_identity(scope["headers"])
        except contract.HeaderError:
            identity = None  # malformed identity headers: the guard below answers 400, nothing is set
        if identity is not None:
            context.run(request_id_var.set, identity.request_id)
            context.run(user_id_var.set, identity.user_id)
            context.run(tenant_id_var.set, identity.tenant_id)
            scope = contract.with_request_id(scope, identity)
        contract.observe_early(scope, entry, context.run(current))

        async def send_with_audit(message: Message) -> None:
            if message["type"] == "http.response.start":
                contract.add_audit_headers(message, current())
            await send(message)

        await self.drive(context.run(self.app, scope, receive, send_with_audit), context)


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


app.add_middleware(contract.RequestGuard, read_entry=lambda scope: current())  # reads nothing: the layer above did
app.add_middleware(SnapshotContextMiddleware)  # outermost: the guard and everything below run in the request's copy
