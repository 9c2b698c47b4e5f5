"""The cross-client judge: a leaked value is traced to another client connection, the same one, or cannot be told.

A reverse proxy sends different clients' requests over one upstream connection; in-process, `inprocess.chained`
plays that connection, with requests of two clients interleaved as a proxy would forward them.
"""

from __future__ import annotations

import json

from apps.harness import inprocess, origin, registry, traffic
from apps.harness.checker import LEAK, Sent, failure_name
from apps.harness.contract import ENTRY, TOKEN_RE
from loadtests import validation
from loadtests.recorder import Recorder
from loadtests.scenarios import IdSource
from scripts.load.bounded_run import merge

A, B = origin.new_client_id(), origin.new_client_id()


def leaking_variant() -> registry.Variant:
    """A variant whose user leaks downstream on one connection (a set-only design), from the registry's expectations."""
    wanted = failure_name("middleware", "user_id", LEAK)
    return next(v for v in registry.VARIANTS if wanted in v.expected_in(registry.KEEPALIVE) and v.exact)


def judged_on_one_connection(specs: list[traffic.RequestSpec]) -> list[tuple[list[str], frozenset[str]]]:
    replies = inprocess.run(inprocess.chained(leaking_variant().load(), specs))
    return [validation.assess(spec, r.status, r.headers, r.body) for spec, r in zip(specs, replies, strict=True)]


def test_identities_carry_the_client_id_and_stay_contract_tokens() -> None:
    source = IdSource()
    spec = source.next(traffic.KINDS, traffic.SMALL_BODY_BYTES)
    for value in (spec.sent.request_id, spec.sent.tenant_id):
        assert origin.client_of(value) == source.prefix
        assert TOKEN_RE.fullmatch(value)
    assert IdSource().prefix != source.prefix
    assert origin.client_of("mix-u3") is None and origin.client_of(None) is None


def test_another_connections_user_is_cross_client() -> None:
    # client A authenticates, then client B's anonymous request is forwarded on the same upstream connection
    specs = [traffic.request(traffic.GET, A, 0, anonymous=False), traffic.request(traffic.GET, B, 1, anonymous=True)]
    (first, _), (names, origins) = judged_on_one_connection(specs)
    assert first == []
    assert failure_name(ENTRY, "user_id", LEAK) in names
    assert origins == {origin.OTHER_CLIENT}


def test_the_same_connections_earlier_user_is_same_client() -> None:
    specs = [traffic.request(traffic.GET, A, 0, anonymous=False), traffic.request(traffic.GET, A, 1, anonymous=True)]
    (_, _), (names, origins) = judged_on_one_connection(specs)
    assert failure_name(ENTRY, "user_id", LEAK) in names
    assert origins == {origin.SAME_CLIENT}


def crafted(sent: Sent, entry_user: str | None) -> tuple[dict[str, str], bytes]:
    """An all-ok response of the contract, but `entry` saw `entry_user` (a value no request of this client sent)."""
    triple = {"request_id": sent.request_id, "user_id": sent.user_id, "tenant_id": sent.tenant_id}
    observed = {point: dict(triple) for point in ("middleware", "dependency", "endpoint", "service")}
    observed |= {point: dict(triple) for point in ("task", "thread", "log")}
    observed = {ENTRY: {"request_id": None, "user_id": entry_user, "tenant_id": None}, **observed}
    headers = {
        "x-request-id": sent.request_id,
        "x-audit-request-id": sent.request_id,
        "x-audit-user-id": sent.user_id or "",
        "x-audit-tenant-id": sent.tenant_id or "",
    }
    body = {"variant": "v", "item_id": "item1", "request_id": sent.request_id, "observed": observed}
    return headers, json.dumps(body, separators=(",", ":")).encode()


def test_an_unknowable_value_cannot_be_told_and_an_ok_response_has_no_origin() -> None:
    spec = traffic.request(traffic.GET, A, 7, anonymous=True)
    headers, body = crafted(spec.sent, "admin")  # not an identity any client sent: whose it is cannot be told
    names, origins = validation.assess(spec, 200, headers, body)
    assert names == [failure_name(ENTRY, "user_id", LEAK)] and origins == {origin.UNKNOWN}
    headers, body = crafted(spec.sent, f"{B}-u3")
    assert validation.assess(spec, 200, headers, body)[1] == {origin.OTHER_CLIENT}
    headers, body = crafted(spec.sent, None)
    assert validation.assess(spec, 200, headers, body) == ([], frozenset())
    foreign = traffic.request(traffic.GET, "mix", 7, anonymous=True)  # no client id in the request's own identity
    headers, body = crafted(foreign.sent, f"{B}-u3")
    assert validation.assess(foreign, 200, headers, body)[1] == {origin.UNKNOWN}


def test_a_run_counts_cross_client_requests_per_cell() -> None:
    recorder = Recorder()
    leak = [failure_name(ENTRY, "user_id", LEAK)]
    recorder.tally(leak, "get", {origin.OTHER_CLIENT})
    recorder.tally(leak, "get", {origin.OTHER_CLIENT, origin.SAME_CLIENT})
    recorder.tally(leak, "post", {origin.SAME_CLIENT})
    record = json.loads(json.dumps(recorder.as_dict()))
    assert merge([record], ("warmup",), "get")["cross_client"] == 2
    assert merge([record], ("warmup",), "post")["cross_client"] == 0
    assert merge([record], ("warmup",))["origins"] == {origin.OTHER_CLIENT: 2, origin.SAME_CLIENT: 2}
