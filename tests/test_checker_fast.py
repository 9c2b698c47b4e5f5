"""The checker's fast paths give the field-by-field verdicts: over conformance traffic and every kind of failure."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator

import pytest
from geventhttpclient.header import Headers

from apps.harness import checker, inprocess, observability, registry, traffic
from apps.harness.contract import AUDIT_HEADERS, REQUEST_ID_HEADER
from loadtests import validation

Judge = Callable[[traffic.RequestSpec, dict[str, str], bytes], list[str]]


def dumps(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()  # as the apps' JSONResponse writes


def fast_judge() -> Judge:
    traces = observability.TraceLog()
    return lambda spec, headers, body: validation.judge(spec, 200, headers, body, True, traces)


def slow_judge() -> Judge:
    """The load judge with both fast paths off: every response parsed and judged field by field."""
    traces = observability.TraceLog()

    def judge(spec: traffic.RequestSpec, headers: dict[str, str], body: bytes) -> list[str]:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(validation, "all_ok_body", lambda *_: False)
            patch.setattr(observability, "classify", checker.classify_fields)
            return validation.judge(spec, 200, headers, body, True, traces)

    return judge


def conformance_traffic() -> Iterator[tuple[str, traffic.RequestSpec, inprocess.Reply]]:
    """Every variant under concurrent and keep-alive traffic (leaking variants leak here): GET, POST, stream mix."""
    for variant in registry.VARIANTS:
        app = variant.load()
        for scenario, driver in (("concurrent", inprocess.concurrently), ("keepalive", inprocess.chained)):
            specs = traffic.mix(45, prefix=f"fast-{variant.name}-{scenario}")
            for spec, reply in zip(specs, inprocess.run(driver(app, specs)), strict=True):
                yield variant.name, spec, reply


def test_both_paths_agree_over_conformance_traffic() -> None:
    fast, slow = fast_judge(), slow_judge()
    took_fast = failed = 0
    for name, spec, reply in conformance_traffic():
        assert reply.status == 200, name
        data = reply.json()
        assert checker.classify(spec.sent, reply.headers, data) == checker.classify_fields(
            spec.sent, reply.headers, data
        )
        verdict = fast(spec, reply.headers, reply.body)
        assert verdict == slow(spec, reply.headers, reply.body), (name, spec)
        took_fast += checker.all_ok_body(spec.sent, reply.headers, reply.body)
        failed += bool(verdict)
    assert took_fast > 500 and failed > 50  # both the common case and real failures were exercised


def good() -> tuple[traffic.RequestSpec, dict[str, str], dict]:
    spec = traffic.request(traffic.POST, "crafted", 7, anonymous=False, traced=False)
    reply = inprocess.run(inprocess.concurrently(registry.get("contextvar_asgi").load(), [spec]))[0]
    return spec, dict(reply.headers), reply.json()


def mutate_body(change: Callable[[dict], None]) -> Callable[[dict[str, str], dict], tuple[dict[str, str], bytes]]:
    def apply(headers: dict[str, str], body: dict) -> tuple[dict[str, str], bytes]:
        body = copy.deepcopy(body)
        change(body)
        return headers, dumps(body)

    return apply


def mutate_headers(change: Callable[[dict], None]) -> Callable[[dict[str, str], dict], tuple[dict[str, str], bytes]]:
    def apply(headers: dict[str, str], body: dict) -> tuple[dict[str, str], bytes]:
        headers = dict(headers)
        change(headers)
        return headers, dumps(body)

    return apply


def set_field(checkpoint: str, field: str, value: object) -> Callable[[dict], None]:
    return lambda body: body["observed"][checkpoint].__setitem__(field, value)


AUDIT_USER = AUDIT_HEADERS["user_id"].lower()
CRAFTED = {  # name -> (mutation, a failure it must report, or None when the response is still all ok)
    "unchanged": (mutate_body(lambda body: None), None),
    "lost downstream": (mutate_body(set_field("endpoint", "user_id", None)), "endpoint.user_id:lost"),
    "leak at entry": (mutate_body(set_field("entry", "request_id", "crafted-r1")), "entry.request_id:leak"),
    "leak downstream": (mutate_body(set_field("service", "tenant_id", "other-t")), "service.tenant_id:leak"),
    "crossed body id": (mutate_body(lambda body: body.__setitem__("request_id", "other")), "response.request_id:leak"),
    "crossed echo": (
        mutate_headers(lambda headers: headers.__setitem__(REQUEST_ID_HEADER.lower(), "other")),
        "response.request_id:leak",
    ),
    "audit mismatch": (mutate_headers(lambda h: h.__setitem__(AUDIT_USER, "other-u")), "audit.user_id:leak"),
    "audit missing": (mutate_headers(lambda h: h.pop(AUDIT_USER)), "audit.user_id:lost"),
    "audit empty": (mutate_headers(lambda h: h.__setitem__(AUDIT_USER, "")), "audit.user_id:lost"),
    "missing checkpoint": (mutate_body(lambda body: body["observed"].pop("log")), "log.request_id:lost"),
    "missing field": (mutate_body(lambda body: body["observed"]["task"].pop("tenant_id")), "task.tenant_id:lost"),
    "no observed": (mutate_body(lambda body: body.pop("observed")), "middleware.request_id:lost"),
    "extra field": (mutate_body(set_field("thread", "extra", "x")), None),
    "extra checkpoint": (mutate_body(lambda body: body["observed"].__setitem__("extra", {})), None),
    "extra key": (mutate_body(lambda body: body.__setitem__("note", "x")), None),
    "no body_bytes": (mutate_body(lambda body: body.pop("body_bytes")), None),
    "key order": (mutate_body(lambda body: body.__setitem__("variant", body.pop("variant"))), None),
    "span, new root": (
        mutate_body(lambda body: body.__setitem__("span", {"trace_id": "ab" * 16, "parent_span_id": None})),
        None,
    ),
    "span lost": (mutate_body(lambda body: body.__setitem__("span", {})), "span.trace_id:lost"),
    "event with another user": (
        mutate_body(
            lambda body: body.__setitem__(
                "event", {"user": {"id": "other-u"}, "tags": {"request_id": "crafted-r7", "tenant_id": "crafted-t7"}}
            )
        ),
        "event.user_id:leak",
    ),
    "escaped token": (mutate_body(lambda body: body.__setitem__("variant", 'a"b')), None),
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_both_paths_agree_on_every_kind_of_failure(name: str) -> None:
    spec, headers, body = good()
    mutation, must_report = CRAFTED[name]
    headers, raw = mutation(headers, body)
    fast, slow = fast_judge()(spec, headers, raw), slow_judge()(spec, headers, raw)
    assert fast == slow
    if must_report is None:
        assert fast == []
    else:
        assert must_report in fast
        assert not checker.all_ok_body(spec.sent, headers, raw)
    data = json.loads(raw)
    assert checker.classify(spec.sent, headers, data) == checker.classify_fields(spec.sent, headers, data)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b'{"variant":"x","item_id":"i","request_id":"r","observed":{}}',  # no ids at all
    ],
)
def test_bodies_that_are_not_an_item_response(raw: bytes) -> None:
    spec, headers, _ = good()
    assert fast_judge()(spec, headers, raw) == slow_judge()(spec, headers, raw) != []


def test_duplicate_keys_and_odd_ids_fall_back_to_the_full_judge() -> None:
    spec, headers, body = good()
    all_ok = dumps(body)
    leaked = copy.deepcopy(body)
    leaked["observed"]["endpoint"]["user_id"] = "other-u"
    # JSON keeps the last of two equal keys: a body whose first "observed" is all ok still leaks
    twice = all_ok[:-1] + b',"observed":' + dumps(leaked["observed"]) + b"}"
    assert not checker.all_ok_body(spec.sent, headers, twice)
    assert fast_judge()(spec, headers, twice) == slow_judge()(spec, headers, twice) == ["endpoint.user_id:leak"]
    no_id = checker.Sent(None, spec.sent.user_id, spec.sent.tenant_id)  # the id then comes from the echo
    assert not checker.all_ok_body(no_id, headers, all_ok)
    assert not checker.all_ok_body(checker.Sent(spec.sent.request_id, 'u"1', None), headers, all_ok)  # needs escaping


def client_headers(headers: dict[str, str]) -> Headers:
    """The headers as locust's FastHttpUser hands them over: geventhttpclient's case-insensitive multimap."""
    converted = Headers()
    for name, value in headers.items():
        converted.add(name.title(), value)  # the wire's spelling, not the lower-case one
    return converted


@pytest.mark.parametrize("name", list(CRAFTED))
def test_client_headers_give_the_same_verdicts(name: str) -> None:
    spec, headers, body = good()
    mutation, _ = CRAFTED[name]
    headers, raw = mutation(headers, body)
    assert fast_judge()(spec, client_headers(headers), raw) == slow_judge()(spec, headers, raw)


def test_a_repeated_client_header_falls_back_to_the_full_judge() -> None:
    spec, headers, body = good()
    repeated = client_headers(headers)
    repeated.add(REQUEST_ID_HEADER, "other")  # two X-Request-ID lines: the lowered dict keeps the last
    assert not checker.all_ok_body(spec.sent, repeated, dumps(body), True)
    lowered = dict(headers) | {REQUEST_ID_HEADER.lower(): "other"}
    assert fast_judge()(spec, repeated, dumps(body)) == slow_judge()(spec, lowered, dumps(body)) != []
