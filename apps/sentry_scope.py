"""Library: sentry-sdk with its Starlette and FastAPI integrations and tracing on, events kept in memory.

Every request tags its request id and tenant on Sentry's scope; authenticated requests also `set_user`. Checkpoints
read what the scope holds, the `log` checkpoint reads the event Sentry would send for a message captured in the
service (also reported whole as `event`, judged by apps.harness.observability), and the audit reads what the request's
transaction carries. Does more work than the others: an SDK transaction per request and an event serialised into
an envelope.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from typing import Annotated, Any

import sentry_sdk
from fastapi import Depends, FastAPI, Request
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.transport import Transport
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.harness import contract, observability
from apps.harness.contract import Triple

VARIANT = "sentry_scope"
# Memory, not a network: keep the latest events and transactions only. An event is read back in the call that
# captured it (capture_and_observe), so a few hundred are plenty; a small cap also fills within the soak's warm-up,
# where 10,000 full events (~15 KiB each) were still filling after 10k requests and read as ~1.5 GiB/100k "growth".
KEPT = 256


class InMemoryTransport(Transport):
    """Keeps the envelopes Sentry would send: error/message events by id, transactions in arrival order."""

    def __init__(self, kept: int = KEPT) -> None:
        super().__init__()
        self.kept = kept
        self.events: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.transactions: deque[dict[str, Any]] = deque(maxlen=kept)

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events[event["event_id"]] = event
            while len(self.events) > self.kept:
                self.events.popitem(last=False)
        transaction = envelope.get_transaction_event()
        if transaction is not None:
            self.transactions.append(transaction)


transport = InMemoryTransport()
SENTRY_OPTIONS: dict[str, Any] = {
    "dsn": None,  # nothing leaves the process: the transport keeps every envelope
    "transport": transport,
    "traces_sample_rate": 1.0,  # tracing on: a transaction per request
    "integrations": [
        StarletteIntegration(transaction_style="endpoint"),
        FastApiIntegration(transaction_style="endpoint"),
    ],
}
# In a service of its own this is `sentry_sdk.init(**SENTRY_OPTIONS)`. init binds the client to the whole process, and
# its integrations patch Starlette for every app in it; ctxbench times every variant in one process, so the client is
# bound to this app's requests instead (BindClient below): the integrations stay inactive for the other apps.
client = sentry_sdk.Client(**SENTRY_OPTIONS)
# A tag for every event, set once at startup as apps do after init: on the isolation scope of the import-time Context.
sentry_sdk.set_tag(*observability.STARTUP_TAG)


def current() -> Triple:
    """The user and tags the scopes hold, merged as Sentry merges them onto an event (global < isolation < current)."""
    user: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    # Sentry has no public getter for them; `_user` and `_tags` are what `apply_to_event` copies onto every event.
    for scope in (sentry_sdk.get_global_scope(), sentry_sdk.get_isolation_scope(), sentry_sdk.get_current_scope()):
        user = scope._user or user
        tags.update(scope._tags)
    return contract.triple(tags.get("request_id"), user.get("id"), tags.get("tenant_id"))


def carried_by_transaction() -> Triple:
    """What the request's transaction carries: nothing without one, else the scopes' user and tags, its own on top."""
    transaction = sentry_sdk.get_current_scope().transaction
    if transaction is None:
        return contract.triple()
    seen = current()
    tags = transaction._tags
    return contract.triple(
        tags.get("request_id", seen["request_id"]), seen["user_id"], tags.get("tenant_id", seen["tenant_id"])
    )


class RequestContextMiddleware:
    """Tags the request on Sentry's scope (and its user when authenticated); reads the transaction for the audit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        identity = contract.identity_of(scope)
        sentry_sdk.set_tag("request_id", identity.request_id)
        if identity.tenant_id is not None:
            sentry_sdk.set_tag("tenant_id", identity.tenant_id)
        if identity.user_id is not None:  # the user only for authenticated requests
            sentry_sdk.set_user({"id": identity.user_id})
        contract.observe(scope, "middleware", current())

        async def send_with_audit(message: Message) -> None:
            if message["type"] == "http.response.start":
                contract.add_audit_headers(message, carried_by_transaction())
            await send(message)

        await self.app(scope, receive, send_with_audit)


class BindClient:
    """Outermost: this app's requests use this app's Sentry client (what `sentry_sdk.init` does for a whole process).

    A new current scope is forked per request and given the client; the isolation scope, where `set_user` and
    `set_tag` write, is left exactly as the server hands it over, so Sentry's own middleware decides as it would.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with sentry_sdk.new_scope() as sentry_scope:
            sentry_scope.set_client(client)
            await self.app(scope, receive, send)


def capture_and_observe(message: str) -> dict[str, Any]:
    """Capture a message as the service reports one, and return the user and tags on the event Sentry would send."""
    event_id = sentry_sdk.capture_message(message, level="info")
    event = transport.events.get(event_id or "") or {}
    return {"event_id": event_id, "user": event.get("user"), "tags": event.get("tags") or {}}


def event_triple(event: dict[str, Any]) -> Triple:
    tags = event["tags"]
    return contract.triple(tags.get("request_id"), (event["user"] or {}).get("id"), tags.get("tenant_id"))


# --- Dependencies ---------------------------------------------------------------------------------
async def current_user() -> str | None:
    return current()["user_id"]  # None: anonymous


async def current_tenant(request: Request, user: Annotated[str | None, Depends(current_user)]) -> str | None:
    contract.observe(request.scope, "dependency", current())
    return current()["tenant_id"]


# --- Service: two calls deep, one child task, one threadpool call, one captured message -------------
def lookup_in_thread() -> Triple:
    return current()


async def audit_child() -> Triple:
    await asyncio.sleep(0)
    return current()


async def fetch_item(item_id: str) -> dict[str, Any]:
    await asyncio.sleep(0)
    seen = current()
    task = await asyncio.create_task(audit_child())
    thread = await run_in_threadpool(lookup_in_thread)
    event = capture_and_observe(f"fetched item {item_id}")
    return {"service": seen, "task": task, "thread": thread, "log": event_triple(event), "event": event}


async def load_item(item_id: str, fail: bool) -> dict[str, Any]:
    await asyncio.sleep(0)
    if fail:
        raise contract.DeliberateFailure(item_id)
    return await fetch_item(item_id)


async def handle(request: Request, item_id: str, fail: bool, **extra: object) -> dict:
    contract.observe(request.scope, "endpoint", current())
    report = await load_item(item_id, fail)
    event = report.pop("event")
    return contract.item_body(VARIANT, item_id, request.scope, report, event=event, **extra)


# --- App ------------------------------------------------------------------------------------------
fastapi_app = FastAPI(title=VARIANT)
Tenant = Annotated[str | None, Depends(current_tenant)]


@fastapi_app.get("/items/{item_id}")
async def get_item(item_id: str, request: Request, tenant: Tenant, fail: bool = False) -> Response:
    return JSONResponse(await handle(request, item_id, fail))


@fastapi_app.post("/items/{item_id}")
async def post_item(item_id: str, request: Request, tenant: Tenant, fail: bool = False) -> Response:
    size = await contract.read_body_size(request)
    if size is None:
        return contract.body_too_large_response()
    return JSONResponse(await handle(request, item_id, fail, body_bytes=size))


@fastapi_app.get("/stream/{item_id}")
async def stream_item(item_id: str, request: Request, tenant: Tenant, fail: bool = False) -> Response:
    return contract.streamed_json(await handle(request, item_id, fail))


@fastapi_app.get("/healthz")
async def healthz() -> Response:
    return contract.health_response()


fastapi_app.add_middleware(RequestContextMiddleware)
# Outermost of the app's own middleware; Sentry's ASGI middleware (its Starlette integration) wraps the whole app, so
# `entry` reads what the scope holds once Sentry has set up the request.
fastapi_app.add_middleware(contract.RequestGuard, read_entry=lambda scope: current())
app = BindClient(fastapi_app)
