"""The HTTP contract every variant serves, defined once: headers, limits, checkpoints, response shape, guard."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.harness import startup

# --- Request headers (all optional) -------------------------------------------------------------
REQUEST_ID_HEADER = "X-Request-ID"
USER_ID_HEADER = "X-User-ID"
TENANT_ID_HEADER = "X-Tenant-ID"
IDENTITY_HEADERS = (REQUEST_ID_HEADER, USER_ID_HEADER, TENANT_ID_HEADER)
TOKEN_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
TOKEN_RULE = "[A-Za-z0-9._-]{1,64}"

# --- Endpoints -----------------------------------------------------------------------------------
ITEM_PATH = "/items/{item_id}"  # GET, and POST with a body of at most MAX_BODY_BYTES
STREAM_PATH = "/stream/{item_id}"
HEALTH_PATH = "/healthz"
FAIL_QUERY = "fail=1"  # on the item endpoints: raise after the context is set (the one deliberate 500)

# --- What a variant reports --------------------------------------------------------------------
FIELDS = ("request_id", "user_id", "tenant_id")
ENTRY = "entry"
CHECKPOINTS = (ENTRY, "middleware", "dependency", "endpoint", "service", "task", "thread", "log")
AUDIT = "audit"
AUDIT_HEADERS = {
    "request_id": "X-Audit-Request-ID",
    "user_id": "X-Audit-User-ID",
    "tenant_id": "X-Audit-Tenant-ID",
}
# What each reading saw of the app's startup values (apps/harness/startup.py): one hex digit per checkpoint, in
# CHECKPOINTS order, in the body's "startup" (the audit's in its own header); 0 every value visible, else the mask of
# the missing ones; NOT_REPORTED where the reading was not made by `triple()` (it carries no startup reading).
STARTUP_KEY = "startup"
AUDIT_STARTUP_HEADER = "X-Audit-Startup"
NOT_REPORTED = "-"
ALL_STARTUP_KEPT = "0" * len(CHECKPOINTS)

# --- Limits and shapes ---------------------------------------------------------------------------
MAX_BODY_BYTES = 1024 * 1024
STREAM_CHUNKS = 4
HEALTH_BODY = {"status": "ok"}
# Where RequestGuard leaves the per-request observation sink: ctxbench's probe, not a mechanism under test.
OBSERVED_SCOPE_KEY = "ctxbench.observed"
# Readings a context layer that must sit outside the guard (it decides the Context the whole request runs in, the
# guard included) made before the guard ran: its `entry` on arrival and its `middleware`. The guard opens the sink
# with them instead of reading `entry` itself.
EARLY_SCOPE_KEY = "ctxbench.early"

Triple = dict[str, str | None]


class Seen(dict):
    """A checkpoint's reading: the triple (what serialises), and what the same Context showed of the startup values."""

    __slots__ = ("startup",)

    def __init__(self, request_id: str | None, user_id: str | None, tenant_id: str | None) -> None:
        super().__init__(request_id=request_id, user_id=user_id, tenant_id=tenant_id)
        self.startup = startup.missing()  # read here, in the checkpoint's own Context: a task's, a thread's


def triple(request_id: str | None = None, user_id: str | None = None, tenant_id: str | None = None) -> Triple:
    """The (request_id, user_id, tenant_id) a checkpoint sees, None where it sees nothing (and its startup reading)."""
    return Seen(request_id, user_id, tenant_id)


def startup_digit(seen: Mapping[str, str | None]) -> str:
    """One reading's startup digit (NOT_REPORTED for a plain dict, which carries none)."""
    mask = getattr(seen, "startup", None)
    return NOT_REPORTED if mask is None else format(mask, "x")


def is_valid_token(value: str) -> bool:
    return TOKEN_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Identity:
    """What a request says about itself, after validation (request_id always set)."""

    request_id: str
    user_id: str | None
    tenant_id: str | None
    generated_request_id: bool = False

    def as_triple(self) -> Triple:
        return triple(self.request_id, self.user_id, self.tenant_id)


class HeaderError(ValueError):
    """A header that breaks the contract: answered with a 400 naming it."""

    def __init__(self, header: str, reason: str) -> None:
        super().__init__(f"{header}: {reason}")
        self.header = header
        self.reason = reason


def _header_values(raw_headers: Iterable[tuple[bytes, bytes]], name: str) -> list[str]:
    key = name.lower().encode("latin-1")
    return [value.decode("latin-1") for header, value in raw_headers if header.lower() == key]


def _optional_token(raw_headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    values = _header_values(raw_headers, name)
    if not values:
        return None
    if len(values) > 1:
        raise HeaderError(name, "must appear at most once")
    if not is_valid_token(values[0]):
        # An empty value is malformed too: "absent" is the only way to say "none".
        raise HeaderError(name, f"must match {TOKEN_RULE}")
    return values[0]


def parse_identity(raw_headers: Iterable[tuple[bytes, bytes]]) -> Identity:
    """Validate the identity headers; a missing request id is generated. Raises HeaderError."""
    headers = list(raw_headers)
    request_id = _optional_token(headers, REQUEST_ID_HEADER)
    user_id = _optional_token(headers, USER_ID_HEADER)
    tenant_id = _optional_token(headers, TENANT_ID_HEADER)
    if request_id is None:
        return Identity(uuid.uuid4().hex, user_id, tenant_id, generated_request_id=True)
    return Identity(request_id, user_id, tenant_id)


def identity_of(scope: Scope) -> Identity:
    """The identity of a request that RequestGuard has already validated and normalised."""
    return parse_identity(scope["headers"])


def with_request_id(scope: Scope, identity: Identity) -> Scope:
    """The scope, with a generated request id added to its headers so every layer below reads the same one."""
    if not identity.generated_request_id:
        return scope
    return {**scope, "headers": [*scope["headers"], (REQUEST_ID_HEADER.lower().encode(), identity.request_id.encode())]}


def observe_early(scope: Scope, entry: Triple, middleware: Triple) -> None:
    """A context layer outside the guard records its `entry` (on arrival) and `middleware` readings (the probe)."""
    scope[EARLY_SCOPE_KEY] = {ENTRY: entry, "middleware": middleware}


def _declared_length(raw_headers: list[tuple[bytes, bytes]]) -> int | None:
    values = _header_values(raw_headers, "Content-Length")
    if not values:
        return None
    if len(values) > 1 or not values[0].isdigit():
        raise HeaderError("Content-Length", "must be one non-negative integer")
    return int(values[0])


# --- Error answers -------------------------------------------------------------------------------
def error_body(status: int, message: str, **details: object) -> dict[str, object]:
    return {"error": message, "status": status, **details}


def header_error_response(error: HeaderError) -> JSONResponse:
    return JSONResponse(error_body(400, error.reason, header=error.header), status_code=400)


def body_incomplete_response() -> JSONResponse:
    return JSONResponse(error_body(400, "request body incomplete: the client stopped sending"), status_code=400)


def body_too_large_response() -> JSONResponse:
    return JSONResponse(error_body(413, "request body too large", limit_bytes=MAX_BODY_BYTES), status_code=413)


class DeliberateFailure(RuntimeError):
    """Raised by the service on `?fail=1`: the contract's one deliberate 500."""


class RequestGuard:
    """Outermost layer of every variant: validates identity headers, assigns a request id, caps the body, echoes the id.

    It shares no context: it normalises the request so that every variant sees the same input, takes the `entry`
    reading with the variant's own reader, and gives the request its observation sink (the probe that carries
    checkpoint readings into the response body).
    """

    def __init__(self, app: ASGIApp, read_entry: Callable[[Scope], Triple]) -> None:
        self.app = app
        self.read_entry = read_entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        early = scope.get(EARLY_SCOPE_KEY)
        # before anything of this request is set: what the mechanism already holds
        observed = {ENTRY: self.read_entry(scope)} if early is None else dict(early)
        headers = list(scope["headers"])
        try:
            identity = parse_identity(headers)
            declared = _declared_length(headers)
        except HeaderError as error:
            await header_error_response(error)(scope, receive, send)
            return
        if declared is not None and declared > MAX_BODY_BYTES:
            await body_too_large_response()(scope, receive, send)
            return
        if identity.generated_request_id:
            headers.append((REQUEST_ID_HEADER.lower().encode(), identity.request_id.encode()))
        scope = {**scope, "headers": headers, OBSERVED_SCOPE_KEY: observed}
        echoed = identity.request_id
        started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = echoed
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except ClientDisconnect:
            # The client ended its side mid-body (a half-close: hypercorn reports it as a disconnect and can still
            # write). Bad input, not a server error: a 400 if nothing was sent yet, else nothing left to say.
            if not started:
                await body_incomplete_response()(scope, receive, send_with_request_id)


# --- The probe: how checkpoint readings reach the response ----------------------------------------
def observe(scope: Scope, checkpoint: str, seen: Triple) -> None:
    """Record what the mechanism shows at a checkpoint of this request (first reading wins)."""
    scope[OBSERVED_SCOPE_KEY].setdefault(checkpoint, seen)


def set_audit_headers(headers: MutableHeaders, seen: Triple) -> None:
    """Write the audit reading into response headers (empty value where nothing is seen), and its startup digit."""
    for field, header in AUDIT_HEADERS.items():
        headers[header] = seen[field] or ""
    headers[AUDIT_STARTUP_HEADER] = startup_digit(seen)


def add_audit_headers(message: Message, seen: Triple) -> None:
    """The same, into a pure ASGI middleware's `http.response.start` message."""
    set_audit_headers(MutableHeaders(scope=message), seen)


class ObservationHandler(logging.Handler):
    """Copies what a variant's logging.Filter stamped on a record into the caller's observation slot."""

    def emit(self, record: logging.LogRecord) -> None:
        slot = getattr(record, "observation", None)
        if slot is not None:
            slot.update(triple(*(getattr(record, field, None) for field in FIELDS)))


def observed_logger(name: str, stamp: logging.Filter) -> logging.Logger:
    """A logger whose records pass through the variant's stamping filter and end in the probe."""
    logger = logging.getLogger(name)
    logger.handlers = [ObservationHandler()]
    logger.filters = [stamp]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def log_and_observe(logger: logging.Logger, message: str, *args: object, **extra: object) -> Triple:
    """Emit one record and return what the filter stamped on it."""
    slot: Triple = triple()
    logger.info(message, *args, extra={"observation": slot, **extra})
    return slot


def item_body(variant: str, item_id: str, scope: Scope, service_report: Mapping[str, Triple], **extra: object) -> dict:
    """The response body of the item endpoints: `{"variant", "item_id", "request_id", "observed", ...}`."""
    observed = {**scope[OBSERVED_SCOPE_KEY], **service_report}
    readings = [observed.get(checkpoint) for checkpoint in CHECKPOINTS]
    return {
        "variant": variant,
        "item_id": item_id,
        "request_id": identity_of(scope).request_id,
        "observed": dict(zip(CHECKPOINTS, (triple() if seen is None else seen for seen in readings), strict=True)),
        STARTUP_KEY: "".join(NOT_REPORTED if seen is None else startup_digit(seen) for seen in readings),
        **extra,
    }


async def read_body_size(request: Request) -> int | None:
    """Read the whole body and return its size, or None once it passes MAX_BODY_BYTES (answer 413)."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
    return size


def streamed_json(body: dict) -> StreamingResponse:
    """The same JSON body in STREAM_CHUNKS chunks, with a Content-Length; the generator awaits after its last chunk.

    The await after the last chunk is the point: the response is complete on the wire while the request's task is
    still running, which is one of the ways a server can start the next request inside this one's context.
    """
    payload = json.dumps(body, separators=(",", ":")).encode()
    step = -(-len(payload) // STREAM_CHUNKS)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), step):
            yield payload[start : start + step]
            await asyncio.sleep(0)
        await asyncio.sleep(0)

    return StreamingResponse(chunks(), media_type="application/json", headers={"Content-Length": str(len(payload))})


def health_response() -> JSONResponse:
    return JSONResponse(HEALTH_BODY)
