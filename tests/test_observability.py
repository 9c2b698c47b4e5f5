"""The span and event judges can fail, the observability variants report what their libraries hold, harms are named."""

from __future__ import annotations

import json

import pytest

from apps import otel_baggage, sentry_scope
from apps.harness import conformance, inprocess, observability, registry, traffic
from apps.harness.checker import LEAK, LOST, OK, Sent, failures
from apps.harness.contract import AUDIT_HEADERS, CHECKPOINTS, REQUEST_ID_HEADER, triple
from apps.harness.observability import EVENT, SPAN, TraceLog, judge_event, judge_span
from loadtests import validation

OBSERVABILITY = ("sentry_scope", "otel_baggage", "loguru_contextualize")
TRACE_A, SPAN_A = "a" * 32, "1" * 16
TRACE_B, SPAN_B = "b" * 32, "2" * 16
TRACEPARENT_A = f"00-{TRACE_A}-{SPAN_A}-01"


def span(trace_id: str | None, span_id: str | None = "9" * 16, parent: str | None = None) -> dict:
    return {"trace_id": trace_id, "span_id": span_id, "parent_span_id": parent}


# --- The span judge ------------------------------------------------------------------------------
def test_a_root_span_and_a_child_of_the_sent_traceparent_are_ok() -> None:
    traces = TraceLog()
    assert judge_span(None, span(TRACE_B), traces) == {"trace_id": OK, "parent": OK}
    assert judge_span(TRACEPARENT_A, span(TRACE_A, parent=SPAN_A), traces) == {"trace_id": OK, "parent": OK}


def test_a_span_that_joined_another_requests_trace_is_a_leak() -> None:
    """The misattribution the leak produces: no traceparent sent, yet a child in a trace another request had."""
    traces = TraceLog()
    judge_span(None, span(TRACE_B, span_id=SPAN_B), traces)  # the earlier request, a root span of its own
    joined = judge_span(None, span(TRACE_B, parent=SPAN_B), traces)
    assert joined == {"trace_id": LEAK, "parent": LEAK}


def test_a_span_that_ignored_its_traceparent_is_a_leak() -> None:
    verdicts = judge_span(TRACEPARENT_A, span(TRACE_B, parent=SPAN_B), TraceLog())
    assert verdicts == {"trace_id": LEAK, "parent": LEAK}


def test_a_trace_id_seen_twice_is_a_leak_even_as_a_root_span() -> None:
    traces = TraceLog()
    judge_span(None, span(TRACE_B), traces)
    assert judge_span(None, span(TRACE_B), traces)["trace_id"] == LEAK


def test_a_root_span_where_a_traceparent_was_sent_lost_its_parent() -> None:
    assert judge_span(TRACEPARENT_A, span(TRACE_A), TraceLog())["parent"] == LOST
    assert judge_span(TRACEPARENT_A, None, TraceLog()) == {"trace_id": LOST, "parent": LOST}


def test_the_trace_log_is_bounded() -> None:
    traces = TraceLog(capacity=2)
    for trace_id in ("1", "2", "3"):
        traces.add(trace_id)
    assert not traces.seen("1") and traces.seen("3")


# --- The event judge -----------------------------------------------------------------------------
EXPECTED_ANONYMOUS = {"request_id": "r1", "user_id": None, "tenant_id": "t1"}


def event(user_id: str | None, request_id: str = "r1", tenant_id: str = "t1", startup: bool = True) -> dict:
    user = {"id": user_id, "ip_address": "127.0.0.1"} if user_id else {"ip_address": "127.0.0.1"}
    tags = {"request_id": request_id, "tenant_id": tenant_id} | (dict([observability.STARTUP_TAG]) if startup else {})
    return {"user": user, "tags": tags}


def test_an_anonymous_requests_event_without_a_user_is_ok() -> None:
    assert judge_event(EXPECTED_ANONYMOUS, event(None)) == {
        "request_id": OK,
        "user_id": OK,
        "tenant_id": OK,
        "startup": OK,
    }


def test_an_event_without_the_startup_tag_dropped_it() -> None:
    assert judge_event(EXPECTED_ANONYMOUS, event(None, startup=False))["startup"] == "dropped"


def test_an_anonymous_requests_event_carrying_another_user_is_a_leak() -> None:
    assert judge_event(EXPECTED_ANONYMOUS, event("u7"))["user_id"] == LEAK


def test_an_event_filed_under_another_request_or_without_tags_fails() -> None:
    assert judge_event(EXPECTED_ANONYMOUS, event(None, request_id="r2"))["request_id"] == LEAK
    assert judge_event({**EXPECTED_ANONYMOUS, "user_id": "u1"}, {"tags": {}}) == {
        "request_id": LOST,
        "user_id": LOST,
        "tenant_id": LOST,
        "startup": "dropped",
    }


# --- Through the load client's judge: the names locust, the heatmaps and the decision table see ------
def response(**extra: object) -> tuple[dict[str, str], bytes]:
    observed = {checkpoint: triple("r1", None, "t1") for checkpoint in CHECKPOINTS}
    observed["entry"] = triple()
    audit = dict(zip(AUDIT_HEADERS.values(), ("r1", "", "t1"), strict=True))
    body = {"variant": "x", "item_id": "i", "request_id": "r1", "observed": observed, **extra}
    return {REQUEST_ID_HEADER: "r1", **audit}, json.dumps(body).encode()


ANONYMOUS = traffic.RequestSpec(traffic.GET, "i", Sent("r1", None, "t1"))


def test_the_load_judge_names_a_misattributed_event_and_span() -> None:
    headers, body = response(event=event("u7"), span=span(TRACE_B, parent=SPAN_B))
    traces = TraceLog()
    traces.add(TRACE_B)
    names = validation.judge(ANONYMOUS, 200, headers, body, traces=traces)
    assert sorted(names) == ["event.user_id:leak", "span.parent:leak", "span.trace_id:leak"]
    assert observability.harm("event.user_id:leak") == (
        "an anonymous request's error report carried another request's user"
    )
    assert observability.harm("span.trace_id:leak") == (
        "a request joined another request's trace and ignored its traceparent"
    )


def test_the_load_judge_leaves_other_variants_bodies_alone() -> None:
    headers, body = response()
    assert validation.judge(ANONYMOUS, 200, headers, body, traces=TraceLog()) == []


# --- Traffic: a share of requests carries a fresh traceparent --------------------------------------
def test_a_third_of_the_mix_sends_a_fresh_traceparent() -> None:
    specs = traffic.mix(600, prefix="tp")
    sent = [observability.parse_traceparent(spec.headers().get(traffic.TRACEPARENT_HEADER)) for spec in specs]
    traced = [pair for pair in sent if pair is not None]
    assert 150 < len(traced) < 250
    assert len({trace_id for trace_id, _ in traced}) == len(traced)
    assert traffic.RequestSpec(traffic.GET, "i", Sent("r", None, None)).traceparent is None  # the old constructor


# --- The variants ----------------------------------------------------------------------------------
def one(name: str, spec: traffic.RequestSpec) -> inprocess.Reply:
    return inprocess.run(inprocess.concurrently(registry.get(name).load(), [spec]))[0]


def test_otel_reports_a_child_of_the_sent_traceparent_and_a_root_span_otherwise() -> None:
    traced = traffic.request(traffic.GET, "otel", 1, True, traced=True)
    untraced = traffic.request(traffic.GET, "otel", 2, True, traced=False)
    traces = TraceLog()
    for spec in (traced, untraced):
        reply = one("otel_baggage", spec)
        assert failures(observability.judge(spec.sent, spec.traceparent, reply.headers, reply.json(), traces)) == []
    reply = one("otel_baggage", traced)
    assert reply.json()[SPAN]["trace_id"] == observability.parse_traceparent(traced.traceparent)[0]


def test_sentry_reports_the_event_it_would_send() -> None:
    spec = traffic.request(traffic.GET, "sentry", 1, False)
    reply = one("sentry_scope", spec)
    assert observability.event_values(reply.json()[EVENT]) == {
        "request_id": spec.sent.request_id,
        "user_id": spec.sent.user_id,
        "tenant_id": spec.sent.tenant_id,
    }


@pytest.mark.parametrize("name", OBSERVABILITY)
def test_registered_as_libraries_with_a_note_on_their_cost(name: str) -> None:
    variant = registry.get(name)
    assert variant.category == registry.LIBRARY and variant.library
    assert "more work than the others" in variant.summary


@pytest.mark.parametrize("name", OBSERVABILITY)
def test_one_connection_leaks_an_anonymous_request_the_previous_user(name: str) -> None:
    """The finding, measured: set-only user context leaks on one connection, and a fresh Context removes it (and
    hides the app's startup values, nothing else)."""
    variant = registry.get(name)
    found = conformance.verdicts(variant, registry.KEEPALIVE, count=60)
    assert "log.user_id:leak" in found
    fresh = set(conformance.verdicts(variant, registry.KEEPALIVE, count=60, fresh_context=True))
    assert fresh == variant.expected_with_fresh_context() and not any(":leak" in name for name in fresh)


def test_every_registered_failure_has_a_harm_sentence() -> None:
    for name in OBSERVABILITY:
        for scenario in registry.SCENARIOS:
            for failure in registry.get(name).expected_in(scenario):
                assert observability.harm(failure) != failure


def test_the_in_memory_sinks_stay_at_their_cap_under_load() -> None:
    """The sinks stand in for a network: after a load run they hold their cap, not every request (the soak's RSS)."""
    requests = sentry_scope.KEPT + 50
    conformance.verdicts(registry.get("sentry_scope"), registry.CONCURRENT, count=requests)
    conformance.verdicts(registry.get("otel_baggage"), registry.CONCURRENT, count=requests)
    assert len(sentry_scope.transport.events) == sentry_scope.KEPT
    assert len(sentry_scope.transport.transactions) == sentry_scope.KEPT
    assert len(otel_baggage.exporter.get_finished_spans()) == otel_baggage.EXPORTED_SPANS_KEPT
