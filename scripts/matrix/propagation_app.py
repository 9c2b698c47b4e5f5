"""The propagation experiment's app: one value set at one place, read back at every place a FastAPI request reaches.

Every request carries a unique token (X-Request-ID). At the set point the token is stored with the chosen mechanism;
at every read point the mechanism is read and the reading is recorded under the token, which the harness itself
carries explicitly (closures and arguments), so that the recording never depends on the mechanism under test.
"""

# No `from __future__ import annotations`: FastAPI must resolve the dependency annotations of the local functions.

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Annotated, Any

import anyio
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.harness import registry

CONTEXTVAR, MUTABLE, REQUEST_STATE = registry.CONTEXTVAR, registry.MUTABLE_IN_CONTEXTVAR, registry.REQUEST_STATE
MECHANISMS = (CONTEXTVAR, MUTABLE, REQUEST_STATE)

ASGI_MW, BASEHTTP_MW = "pure ASGI middleware", "BaseHTTPMiddleware before call_next"
ASYNC_DEP, SYNC_DEP = "async dependency", "sync dependency"
ASYNC_YIELD_DEP, SYNC_YIELD_DEP = "async dependency with yield", "sync dependency with yield"
ASYNC_ENDPOINT, SYNC_ENDPOINT = "async endpoint", "sync endpoint"
LIFESPAN = "lifespan"
SET_POINTS = (
    *(ASGI_MW, BASEHTTP_MW, ASYNC_DEP, SYNC_DEP, ASYNC_YIELD_DEP, SYNC_YIELD_DEP, ASYNC_ENDPOINT, SYNC_ENDPOINT),
    LIFESPAN,
)

ASGI_OUTSIDE, ASGI_INSIDE = "pure ASGI outside BaseHTTPMiddleware", "pure ASGI inside BaseHTTPMiddleware"
ORDERS = (ASGI_OUTSIDE, ASGI_INSIDE)

# Read points. The middleware ones are named by kind, position and moment; the rest are the same in both orders.
ASGI_BEFORE, ASGI_AFTER, ASGI_SEND_START = "pure ASGI before app", "pure ASGI after app", "pure ASGI send at start"
BASEHTTP_BEFORE, BASEHTTP_AFTER = "BaseHTTP before call_next", "BaseHTTP after call_next"
MIDDLEWARE_READS = (ASGI_BEFORE, ASGI_AFTER, ASGI_SEND_START, BASEHTTP_BEFORE, BASEHTTP_AFTER)
DEPENDENCY, ENDPOINT = "dependency", "endpoint"
ASYNC_TEARDOWN, SYNC_TEARDOWN = "async yield teardown", "sync yield teardown"
ASYNC_BACKGROUND, SYNC_BACKGROUND = "async background task", "sync background task"
STREAMING = "streaming generator"
CREATE_TASK, TASK_GROUP = "asyncio.create_task child", "anyio task group child"
THREADPOOL, TO_THREAD, EXECUTOR = "run_in_threadpool", "asyncio.to_thread", "loop.run_in_executor"
HTTP_EXC_HANDLER, EXC_HANDLER = "HTTPException handler", "Exception handler"
LOG_FILTER = "logging.Filter"
APP_READS = (
    *(DEPENDENCY, ENDPOINT, ASYNC_TEARDOWN, SYNC_TEARDOWN, ASYNC_BACKGROUND, SYNC_BACKGROUND, STREAMING),
    *(CREATE_TASK, TASK_GROUP, THREADPOOL, TO_THREAD, EXECUTOR, HTTP_EXC_HANDLER, EXC_HANDLER, LOG_FILTER),
)

NORMAL_PATH, HTTP_ERROR_PATH, ERROR_PATH = "/probe", "/probe/http-error", "/probe/error"
TOKEN_HEADER = b"x-request-id"
LIFESPAN_VALUE = "set-in-lifespan"

Recorder = Callable[[str, str, str | None], None]


class Mechanism:
    """How a value is stored and read: the only thing that differs between rows of the matrix."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.var: ContextVar[str | None] = ContextVar(f"matrix_{id(self)}", default=None)
        self.holder: ContextVar[dict[str, str] | None] = ContextVar(f"matrix_holder_{id(self)}", default=None)

    def new_request(self) -> None:
        """The mutable pattern: a fresh holder per request, created by the outermost layer."""
        if self.kind == MUTABLE:
            self.holder.set({})

    def set(self, scope: Scope, value: str) -> None:
        if self.kind == CONTEXTVAR:
            self.var.set(value)
        elif self.kind == MUTABLE:
            holder = self.holder.get()
            if holder is None:
                self.holder.set({"value": value})
            else:
                holder["value"] = value
        else:
            scope.setdefault("state", {})["value"] = value

    def get(self, scope: Scope) -> str | None:
        if self.kind == CONTEXTVAR:
            return self.var.get()
        if self.kind == MUTABLE:
            return (self.holder.get() or {}).get("value")
        return scope.get("state", {}).get("value")

    def lifespan_state(self) -> dict[str, Any] | None:
        if self.kind == REQUEST_STATE:
            return {"value": LIFESPAN_VALUE}
        self.set({}, LIFESPAN_VALUE)
        return None


def token_of(scope: Scope) -> str:
    return dict(scope["headers"])[TOKEN_HEADER].decode()


def build(kind: str, set_point: str, order: str, record: Recorder) -> FastAPI:
    """An app where `kind` is set at `set_point`; middleware stacked in `order`; every reading goes to `record`."""
    mechanism = Mechanism(kind)

    def read(scope: Scope, point: str) -> None:
        record(token_of(scope), point, mechanism.get(scope))

    def maybe_set(scope: Scope, point: str) -> None:
        if point == set_point:
            mechanism.set(scope, token_of(scope))

    class HolderMiddleware:
        """Outermost: gives the mutable mechanism its per-request holder (a no-op for the other mechanisms)."""

        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                mechanism.new_request()
            await self.app(scope, receive, send)

    class PureASGIMiddleware:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            read(scope, ASGI_BEFORE)
            maybe_set(scope, ASGI_MW)

            async def send_reading(message: Message) -> None:
                if message["type"] == "http.response.start":
                    read(scope, ASGI_SEND_START)
                await send(message)

            await self.app(scope, receive, send_reading)
            read(scope, ASGI_AFTER)

    class BaseHTTPReadingMiddleware(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
            read(request.scope, BASEHTTP_BEFORE)
            maybe_set(request.scope, BASEHTTP_MW)
            response = await call_next(request)
            read(request.scope, BASEHTTP_AFTER)
            return response

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any] | None]:
        state = mechanism.lifespan_state() if set_point == LIFESPAN else None
        yield state

    async def set_async(request: Request) -> None:
        maybe_set(request.scope, ASYNC_DEP)

    def set_sync(request: Request) -> None:
        maybe_set(request.scope, SYNC_DEP)

    async def set_async_yield(request: Request) -> AsyncIterator[None]:
        maybe_set(request.scope, ASYNC_YIELD_DEP)
        yield
        read(request.scope, ASYNC_TEARDOWN)

    def set_sync_yield(request: Request) -> Iterator[None]:
        maybe_set(request.scope, SYNC_YIELD_DEP)
        yield
        read(request.scope, SYNC_TEARDOWN)

    async def reading_dependency(
        request: Request,
        _a: Annotated[None, Depends(set_async)],
        _s: Annotated[None, Depends(set_sync)],
        _ay: Annotated[None, Depends(set_async_yield)],
        _sy: Annotated[None, Depends(set_sync_yield)],
    ) -> None:
        read(request.scope, DEPENDENCY)

    class MechanismFilter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            read(record.scope, LOG_FILTER)  # type: ignore[attr-defined]
            return True

    logger = logging.getLogger(f"ctxbench.matrix.{id(mechanism)}")
    logger.handlers, logger.filters, logger.propagate = [logging.NullHandler()], [MechanismFilter()], False
    logger.setLevel(logging.INFO)

    def read_in_thread(scope: Scope, point: str) -> None:
        read(scope, point)

    async def read_in_child(scope: Scope, point: str) -> None:
        await asyncio.sleep(0)
        read(scope, point)

    def respond(scope: Scope, background: BackgroundTasks) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            read(scope, STREAMING)
            yield b"ok"

        background.add_task(read_in_child, scope, ASYNC_BACKGROUND)
        background.add_task(read_in_thread, scope, SYNC_BACKGROUND)
        return StreamingResponse(body(), background=background)

    async def async_work(scope: Scope) -> None:
        read(scope, ENDPOINT)
        logger.info("probe", extra={"scope": scope})
        await asyncio.create_task(read_in_child(scope, CREATE_TASK))
        async with anyio.create_task_group() as group:
            group.start_soon(read_in_child, scope, TASK_GROUP)
        await run_in_threadpool(read_in_thread, scope, THREADPOOL)
        await asyncio.to_thread(read_in_thread, scope, TO_THREAD)
        await asyncio.get_running_loop().run_in_executor(None, read_in_thread, scope, EXECUTOR)

    def sync_work(scope: Scope) -> None:
        read(scope, ENDPOINT)
        logger.info("probe", extra={"scope": scope})

    app = FastAPI(lifespan=lifespan)
    Reading = Annotated[None, Depends(reading_dependency)]

    if set_point == SYNC_ENDPOINT:

        @app.get(NORMAL_PATH)
        def probe_sync(request: Request, background: BackgroundTasks, _: Reading) -> Response:
            maybe_set(request.scope, SYNC_ENDPOINT)
            sync_work(request.scope)
            return respond(request.scope, background)

        @app.get(HTTP_ERROR_PATH)
        def http_error_sync(request: Request, _: Reading) -> Response:
            maybe_set(request.scope, SYNC_ENDPOINT)
            raise HTTPException(status_code=418)

        @app.get(ERROR_PATH)
        def error_sync(request: Request, _: Reading) -> Response:
            maybe_set(request.scope, SYNC_ENDPOINT)
            raise RuntimeError("probe")

    else:

        @app.get(NORMAL_PATH)
        async def probe_async(request: Request, background: BackgroundTasks, _: Reading) -> Response:
            maybe_set(request.scope, ASYNC_ENDPOINT)
            await async_work(request.scope)
            return respond(request.scope, background)

        @app.get(HTTP_ERROR_PATH)
        async def http_error_async(request: Request, _: Reading) -> Response:
            maybe_set(request.scope, ASYNC_ENDPOINT)
            raise HTTPException(status_code=418)

        @app.get(ERROR_PATH)
        async def error_async(request: Request, _: Reading) -> Response:
            maybe_set(request.scope, ASYNC_ENDPOINT)
            raise RuntimeError("probe")

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        read(request.scope, HTTP_EXC_HANDLER)
        return JSONResponse({"error": "probe"}, status_code=418)

    async def on_exception(request: Request, exc: Exception) -> Response:
        read(request.scope, EXC_HANDLER)
        return JSONResponse({"error": "probe"}, status_code=500)

    app.add_exception_handler(HTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_exception)
    # add_middleware puts the last one added outermost.
    if order == ASGI_OUTSIDE:
        app.add_middleware(BaseHTTPReadingMiddleware)
        app.add_middleware(PureASGIMiddleware)
    else:
        app.add_middleware(PureASGIMiddleware)
        app.add_middleware(BaseHTTPReadingMiddleware)
    app.add_middleware(HolderMiddleware)
    return app
