"""Conformance over the whole registry: every variant produces exactly its registered verdicts, in every scenario."""

from collections import Counter

import pytest

from apps import inprocess, registry, traffic
from apps.checker import classify, tally

REQUESTS_PER_RUN = 600  # at least 500, a third anonymous, GET/POST/stream interleaved


def run(variant: registry.Variant, scenario: str, fresh_context: bool = False) -> Counter[str]:
    app = variant.load()
    specs = traffic.mix(REQUESTS_PER_RUN, prefix=f"{variant.name}-{scenario}")
    if scenario == registry.CONCURRENT:
        replies = inprocess.run(inprocess.concurrently(app, specs))
    else:
        replies = inprocess.run(inprocess.chained(app, specs, fresh_context=fresh_context))
    assert [reply.status for reply in replies] == [200] * len(specs)
    return tally(classify(spec.sent, reply.headers, reply.json()) for spec, reply in zip(specs, replies, strict=True))


def assert_matches(variant: registry.Variant, found: Counter[str], expected: frozenset[str]) -> None:
    if variant.exact:
        assert set(found) == expected, f"unexpected: {set(found) - expected}; missing: {expected - set(found)}"
    else:
        assert expected <= set(found), f"the control was not caught: missing {expected - set(found)}"


@pytest.mark.parametrize("scenario", registry.SCENARIOS)
@pytest.mark.parametrize("variant", registry.VARIANTS, ids=lambda v: v.name)
def test_verdicts_equal_the_registry(variant: registry.Variant, scenario: str) -> None:
    assert_matches(variant, run(variant, scenario), variant.expected_in(scenario))


@pytest.mark.parametrize("variant", registry.VARIANTS, ids=lambda v: v.name)
def test_a_fresh_context_per_request_removes_every_keepalive_leak(variant: registry.Variant) -> None:
    """What uvicorn's --reset-contextvars does: keep-alive then behaves exactly like separate connections."""
    found = run(variant, registry.KEEPALIVE, fresh_context=True)
    if variant.exact:
        assert set(found) == variant.expected_in(registry.CONCURRENT)
    else:
        assert variant.expected_in(registry.KEEPALIVE) <= set(found)  # a global is no ContextVar: nothing resets it


def test_the_negative_control_is_caught_leaking_under_concurrency() -> None:
    found = run(registry.get("global_state"), registry.CONCURRENT)
    assert sum(count for name, count in found.items() if name.endswith(":leak")) > REQUESTS_PER_RUN
