"""Library: OpenTelemetry's FastAPI instrumentation with an in-memory span exporter; the identity travels as baggage.

A pure ASGI middleware puts the request's identity into W3C baggage (the user only when the request is
authenticated); every checkpoint reads the baggage. The response also reports the request's server span (trace id,
span id, parent span id), judged by apps.harness.observability. Does more work than the others: a span per request,
plus the instrumentation's receive and send spans, each exported to memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from opentelemetry import baggage, context, trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.harness import contract
from apps.harness.contract import Triple

VARIANT = "otel_baggage"
# Memory, not a network exporter: keep the latest spans only (nothing reads them back; the judges read the live span).
# Small so that the exporter is full within the soak's warm-up instead of reading as RSS growth for 10k requests.
EXPORTED_SPANS_KEPT = 256

# The service's own provider (not the global one), so other apps in the same process are not traced by it.
exporter = InMemorySpanExporter(max_spans=EXPORTED_SPANS_KEPT)
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))


def current() -> Triple:
    return contract.triple(*(baggage.get_baggage(field) for field in contract.FIELDS))


class BaggageMiddleware:
    """Puts the request's identity into the current context's baggage for everything below it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        identity = contract.identity_of(scope)
        ctx = baggage.set_baggage("request_id", identity.request_id)
        if identity.tenant_id is not None:
            ctx = baggage.set_baggage("tenant_id", identity.tenant_id, context=ctx)
        if identity.user_id is not None:  # the user only for authenticated requests
            ctx = baggage.set_baggage("user_id", identity.user_id, context=ctx)
        token = context.attach(ctx)
        contract.observe(scope, "middleware", current())

        async def send_with_audit(message: Message) -> None:
            if message["type"] == "http.response.start":
                contract.add_audit_headers(message, current())
            await send(message)

        try:
            await self.app(scope, receive, send_with_audit)
        finally:
            context.detach(token)


class BaggageFilter(logging.Filter):
    """Stamps the baggage on every log record, as a log correlation filter does with trace ids."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id, record.user_id, record.tenant_id = (baggage.get_baggage(f) for f in contract.FIELDS)
        return True


logger = contract.observed_logger(f"ctxbench.{VARIANT}", BaggageFilter())


def server_span() -> dict[str, str | None]:
    """The current span as the response reports it: trace id, span id and parent span id (lower-case hex)."""
    span = trace.get_current_span()
    span_context = span.get_span_context()
    parent = getattr(span, "parent", None)  # an SDK span knows its parent; a non-recording span does not
    return {
        "trace_id": trace.format_trace_id(span_context.trace_id) if span_context.is_valid else None,
        "span_id": trace.format_span_id(span_context.span_id) if span_context.is_valid else None,
        "parent_span_id": trace.format_span_id(parent.span_id) if parent is not None else None,
    }


# --- Dependencies ---------------------------------------------------------------------------------
async def current_user() -> str | None:
    return baggage.get_baggage("user_id")  # None: anonymous


async def current_tenant(request: Request, user: Annotated[str | None, Depends(current_user)]) -> str | None:
    contract.observe(request.scope, "dependency", current())
    return baggage.get_baggage("tenant_id")


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
    span = server_span()
    report = await load_item(item_id, fail)
    return contract.item_body(VARIANT, item_id, request.scope, report, span=span, **extra)


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


app.add_middleware(BaggageMiddleware)
app.add_middleware(contract.RequestGuard, read_entry=lambda scope: current())
# The instrumentation wraps the whole middleware stack: its OpenTelemetryMiddleware runs before RequestGuard, so
# `entry` reads the baggage as the instrumentation leaves it on arrival (the guard is outermost of this app's own).
FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider)
