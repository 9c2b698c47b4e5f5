"""Judges for what observability libraries send (a server span, an error event) and the harm each failure names."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from apps.harness.checker import (
    DROPPED,
    LEAK,
    LOST,
    OK,
    STARTUP,
    Failure,
    Sent,
    Verdicts,
    classify,
    expected_values,
    judge_value,
)
from apps.harness.contract import FIELDS

# Extra body fields a variant may report, and the verdict points they are judged under (`span.trace_id:leak`, ...).
SPAN = "span"  # {"trace_id", "span_id", "parent_span_id"}: the request's server span, lower-case hex
EVENT = "event"  # {"user": {"id": ...} | None, "tags": {...}}: the event the service would send, as Sentry shapes it
SPAN_FIELDS = ("trace_id", "parent")
POINTS = (SPAN, EVENT)

# Failure name -> the harm, in the reader's terms (the report states these instead of the checkpoint names).
HARM: Mapping[str, str] = {
    "event.user_id:leak": "an anonymous request's error report carried another request's user",
    "event.user_id:lost": "an authenticated request's error report carried no user",
    "event.request_id:leak": "an error report was filed under another request's id",
    "event.request_id:lost": "an error report carried no request id",
    "event.tenant_id:leak": "an error report was filed under another request's tenant",
    "event.tenant_id:lost": "an error report carried no tenant",
    "span.trace_id:leak": "a request joined another request's trace and ignored its traceparent",
    "span.parent:leak": "a request joined another request's trace and ignored its traceparent",
    "span.trace_id:lost": "a request reported no trace",
    "span.parent:lost": "a request's span dropped the traceparent its client sent",
    "log.user_id:leak": "a log line was written under another request's user",
    "log.request_id:leak": "a log line was written under another request's id",
    "log.tenant_id:leak": "a log line was written under another request's tenant",
    "log.user_id:lost": "a log line lost the request's user",
    "log.request_id:lost": "a log line lost the request's id",
    "log.tenant_id:lost": "a log line lost the request's tenant",
    "audit.request_id:lost": "a request had no transaction of its own: the monitoring layer skipped it",
    "entry.user_id:leak": "a request started with another request's user already set",
    "entry.request_id:leak": "a request started with another request's id already set",
    "entry.tenant_id:leak": "a request started with another request's tenant already set",
}


def harm(name: str) -> str:
    """The harm a failure name stands for; names without a sentence of their own get a generic one."""
    if name in HARM:
        return HARM[name]
    failure = Failure.parse(name)
    field = failure.field or ""
    what = {"request_id": "id", "user_id": "user", "tenant_id": "tenant"}.get(field, field.replace("_", " "))
    if failure.is_leak:
        return f"code at {failure.point} saw another request's {what}"
    if failure.is_lost:
        return f"code at {failure.point} did not see the request's {what}"
    return name


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of a W3C `traceparent`, or None when there is none (or it is malformed)."""
    if not value:
        return None
    parts = value.strip().lower().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    return parts[1], parts[2]


class TraceLog:
    """Trace ids seen so far in one run (one per load-client process): a trace id the client did not send must be new.

    Bounded, oldest forgotten first: a leak joins a trace of a request that ran moments before, and a load process
    must not grow without limit.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def seen(self, trace_id: str) -> bool:
        return trace_id in self._seen

    def add(self, trace_id: str) -> None:
        self._seen[trace_id] = None
        self._seen.move_to_end(trace_id)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)


def judge_span(traceparent: str | None, span: Mapping | None, traces: TraceLog) -> dict[str, str]:
    """The request's server span: a new root span when no traceparent was sent, else the child of the one sent.

    `trace_id` leaks when it is not the sent trace, or (nothing sent) when another request already had it; `parent`
    leaks when the span hangs under a span the client did not send, and is lost when a sent parent was dropped.
    """
    trace_id = (span or {}).get("trace_id") or None
    parent = (span or {}).get("parent_span_id") or None
    sent = parse_traceparent(traceparent)
    if trace_id is None:
        return {"trace_id": LOST, "parent": LOST if sent else OK}
    if sent is None:
        verdicts = {"trace_id": LEAK if traces.seen(trace_id) else OK, "parent": OK if parent is None else LEAK}
    else:
        verdicts = {"trace_id": judge_value(sent[0], trace_id), "parent": judge_value(sent[1], parent)}
    traces.add(trace_id)
    return verdicts


def event_values(event: Mapping | None) -> dict[str, str | None]:
    """The request id, user and tenant a Sentry-shaped event carries (user id; tags `request_id` and `tenant_id`)."""
    event = event or {}
    user = event.get("user") or {}
    tags = event.get("tags") or {}
    return {"request_id": tags.get("request_id"), "user_id": user.get("id"), "tenant_id": tags.get("tenant_id")}


# The tag a Sentry app sets once after init, before any request (`sentry_sdk.set_tag("deployment", ...)`): it lives on
# the isolation scope of the import-time Context, so an empty Context per request leaves it off every event.
STARTUP_TAG = ("deployment", "ctxbench-startup")


def judge_event(expected: Mapping[str, str | None], event: Mapping | None) -> dict[str, str]:
    """The event must carry this request's user (none for an anonymous request), request id and tenant, and the tag
    the app set at startup (`startup`: dropped when it is gone)."""
    carried = event_values(event)
    verdicts = {field: judge_value(expected[field], carried[field]) for field in FIELDS}
    tags = (event or {}).get("tags") or {}
    verdicts[STARTUP] = OK if tags.get(STARTUP_TAG[0]) == STARTUP_TAG[1] else DROPPED
    return verdicts


def judge(sent: Sent, traceparent: str | None, headers: Mapping[str, str], body: Mapping, traces: TraceLog) -> Verdicts:
    """The leak checker's verdicts, plus `span` and `event` verdicts for a variant that reports them in its body."""
    verdicts = classify(sent, headers, body)
    if SPAN in body:
        verdicts[SPAN] = judge_span(traceparent, body[SPAN], traces)
    if EVENT in body:
        verdicts[EVENT] = judge_event(expected_values(sent, headers), body[EVENT])
    return verdicts
