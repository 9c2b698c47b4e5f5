"""Bad input gets a clear answer (generated id, 400 or 413 with a JSON error), never a 500 or another request's data."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.harness import contract, inprocess, registry, traffic
from apps.harness.checker import Sent, classify, failures
from apps.harness.traffic import RequestSpec

VARIANTS = registry.VARIANTS
# Every variant but the negative control must answer bad input cleanly *and* keep data apart.
SAFE_VARIANTS = [v for v in VARIANTS if v.exact]
HEADER_VALUES = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80),
    st.from_regex(contract.TOKEN_RE, fullmatch=True),
)


def send(variant: registry.Variant, spec: RequestSpec) -> inprocess.Reply:
    return inprocess.run(inprocess.concurrently(variant.load(), [spec]))[0]


def raw(kind: str = traffic.GET, body_size: int = 0, **headers: str) -> RequestSpec:
    return RequestSpec(kind, "item1", Sent(None, None, None), body_size, extra_headers=tuple(headers.items()))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_missing_request_id_is_generated_and_echoed(variant: registry.Variant) -> None:
    reply = send(variant, raw(**{"X-User-ID": "u1"}))
    assert reply.status == 200
    generated = reply.headers["x-request-id"]
    assert contract.is_valid_token(generated)
    assert reply.json()["request_id"] == generated


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
@pytest.mark.parametrize("header", contract.IDENTITY_HEADERS)
@pytest.mark.parametrize("value", ["x" * 65, "", "bad value", "../etc/passwd", "é"])
def test_malformed_or_oversized_header_gets_a_400_naming_it(variant: registry.Variant, header: str, value: str) -> None:
    reply = send(variant, raw(**{header: value}))
    assert reply.status == 400
    assert reply.json()["header"] == header
    assert reply.json()["error"]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_a_repeated_header_is_ambiguous_and_rejected(variant: registry.Variant) -> None:
    spec = RequestSpec(traffic.GET, "i", Sent("r1", None, None), extra_headers=(("x-request-id", "r2"),))
    reply = send(variant, spec)
    assert (reply.status, reply.json()["header"]) == (400, contract.REQUEST_ID_HEADER)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_an_oversized_body_gets_a_413(variant: registry.Variant) -> None:
    reply = send(variant, traffic.request(traffic.POST, "big", 1, False, body_size=contract.MAX_BODY_BYTES + 1))
    assert reply.status == 413
    assert reply.json()["limit_bytes"] == contract.MAX_BODY_BYTES


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_an_undeclared_oversized_body_gets_a_413_too(variant: registry.Variant) -> None:
    """A chunked upload declares no length: the endpoint stops reading at the limit."""
    app = variant.load()
    spec = traffic.request(traffic.POST, "chunked", 1, False, body_size=contract.MAX_BODY_BYTES + 1)

    async def drive() -> list[inprocess.Reply]:
        scope = inprocess.build_scope(spec)
        scope["headers"] = [h for h in scope["headers"] if h[0] != b"content-length"]
        return [await inprocess.call_scope(app, scope, spec.body())]

    assert inprocess.run(drive())[0].status == 413


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_a_failure_leaves_nothing_behind_for_the_next_request_on_the_connection(variant: registry.Variant) -> None:
    """`?fail=1` then a clean request, chained as on one keep-alive connection: a failure leaves nothing more
    behind than a success does (the keep-alive path's own leaks are the keep-alive scenario's business)."""
    app = variant.load()
    clean = traffic.request(traffic.GET, "after", 2, False)
    first = traffic.request(traffic.GET, "first", 1, False)
    failing_first = RequestSpec(first.kind, first.item_id, first.sent, fail=True)
    after_success = inprocess.run(inprocess.chained(app, [first, clean]))
    after_failure = inprocess.run(inprocess.chained(app, [failing_first, clean]))
    assert after_failure[0].status == 500
    assert after_failure[1].status == 200

    def seen_by_clean(replies: list[inprocess.Reply]) -> list[str]:
        reply = replies[1]
        return sorted(failures(classify(clean.sent, reply.headers, reply.json())))

    assert set(seen_by_clean(after_failure)) <= set(seen_by_clean(after_success))


# The case count comes from the hypothesis profile (tests/conftest.py): 1,000 in CI, 10,000 with `make fuzz`.
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    variant=st.sampled_from(SAFE_VARIANTS),
    request_id=st.none() | HEADER_VALUES,
    user_id=st.none() | HEADER_VALUES,
    tenant_id=st.none() | HEADER_VALUES,
    kind=st.sampled_from(traffic.KINDS),
)
def test_any_header_values_get_a_200_or_a_json_400_never_a_500(
    variant: registry.Variant, request_id: str | None, user_id: str | None, tenant_id: str | None, kind: str
) -> None:
    spec = RequestSpec(kind, "item1", Sent(request_id, user_id, tenant_id), 16 if kind == traffic.POST else 0)
    reply = send(variant, spec)
    assert reply.status in (200, 400)
    if reply.status == 400:
        assert reply.json()["header"] in contract.IDENTITY_HEADERS
        return
    expected = set(variant.expected_in(registry.CONCURRENT))
    assert set(failures(classify(spec.sent, reply.headers, reply.json()))) <= expected
