"""The cost of each context layer: 0, 1, 3 and 5 stacked middlewares, pure ASGI against Starlette's BaseHTTPMiddleware.

Every layer owns one ContextVar: it sets it from the request's `X-Request-ID` on the way in and resets it in `finally`,
as the recommended variant does. The endpoint reads every layer's variable and returns them; each worker checks one
response (every layer's value must be this request's id) before timing. Depth 0 is the same app with no layer: the
slope over depth is the cost of one layer. A minimal FastAPI app, so the layers are a visible share of the request.

    python microbench/bm_depth.py --kind basehttp -o depth_basehttp.json
"""

from __future__ import annotations

from contextvars import ContextVar

import pyperf
from fastapi import FastAPI
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from apps.harness import inprocess, traffic
from microbench.asgi_timing import TIMER_NAME, time_requests, versions

PURE_ASGI, BASEHTTP = "pure_asgi", "basehttp"
KINDS = (PURE_ASGI, BASEHTTP)
DEPTHS = (0, 1, 3, 5)
MAX_DEPTH = max(DEPTHS)
REQUEST_ID_KEY = b"x-request-id"

# One variable per layer, created once: ContextVars are meant to be module-level, never created per request.
LAYER_VARS: tuple[ContextVar[str | None], ...] = tuple(
    ContextVar(f"layer_{index}", default=None) for index in range(MAX_DEPTH)
)


class DepthAppDidNotWork(AssertionError):
    """A layer's variable did not carry the request id down to the endpoint."""


def request_id_of(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_KEY:
            return value.decode("latin-1")
    return None


class PureLayer:
    """Pure ASGI: set before calling the app below, reset in `finally`."""

    def __init__(self, app: ASGIApp, var: ContextVar[str | None]) -> None:
        self.app = app
        self.var = var

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = self.var.set(request_id_of(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            self.var.reset(token)


class BaseHTTPLayer(BaseHTTPMiddleware):
    """BaseHTTPMiddleware: set before `call_next`, reset in `finally`."""

    def __init__(self, app: ASGIApp, var: ContextVar[str | None]) -> None:
        super().__init__(app)
        self.var = var

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        token = self.var.set(request_id_of(request.scope))
        try:
            return await call_next(request)
        finally:
            self.var.reset(token)


def build_app(kind: str, depth: int) -> FastAPI:
    app = FastAPI(title=f"depth-{kind}-{depth}")
    layers = LAYER_VARS[:depth]

    @app.get("/items/{item_id}")
    async def get_item(item_id: str) -> Response:
        return JSONResponse({"item_id": item_id, "layers": [var.get() for var in layers]})

    layer = PureLayer if kind == PURE_ASGI else BaseHTTPLayer
    for var in layers:
        app.add_middleware(layer, var=var)
    return app


def verify(app: FastAPI, depth: int, spec: traffic.RequestSpec) -> dict[str, str | int]:
    reply = inprocess.run(inprocess.call(app, spec))  # a copy: nothing it sets reaches the timed requests
    expected = [spec.sent.request_id] * depth
    if reply.status != 200 or reply.json().get("layers") != expected:
        raise DepthAppDidNotWork(f"{app.title}: status {reply.status}, body {reply.body[:200]!r}")
    return {"ctxbench_app": app.title, "ctxbench_depth": depth, "ctxbench_check": "ok"}


def add_metadata(runner: pyperf.Runner, kind: str) -> None:
    runner.metadata["description"] = "one GET through N stacked context middlewares in-process (raw ASGI), CPU time"
    runner.metadata["timer"] = TIMER_NAME
    runner.metadata["ctxbench_kind"] = kind
    runner.metadata.update(versions())


def add_cmdline_args(cmd: list[str], args: object) -> None:
    cmd.extend(("--kind", args.kind))


if __name__ == "__main__":
    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args)
    runner.argparser.add_argument("--kind", default=PURE_ASGI, choices=KINDS)
    args = runner.parse_args()
    add_metadata(runner, args.kind)
    spec = traffic.request(traffic.GET, "bench", 1, anonymous=False)
    for depth in DEPTHS:
        app = build_app(args.kind, depth)
        proof = verify(app, depth, spec) if args.worker else {}
        runner.bench_time_func(f"depth_{depth}", time_requests, app, spec, metadata=proof)
