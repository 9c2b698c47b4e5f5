"""Conformance over the whole registry: every variant produces exactly its registered verdicts, in every scenario."""

import pytest

from apps.harness import conformance, registry


@pytest.mark.parametrize("scenario", registry.SCENARIOS)
@pytest.mark.parametrize("variant", registry.VARIANTS, ids=lambda v: v.name)
def test_verdicts_equal_the_registry(variant: registry.Variant, scenario: str) -> None:
    found = conformance.verdicts(variant, scenario)
    assert conformance.problems(variant, found, variant.expected_in(scenario)) == []


@pytest.mark.parametrize("scenario", registry.CHAINED)
@pytest.mark.parametrize("variant", registry.VARIANTS, ids=lambda v: v.name)
def test_a_fresh_context_per_request_removes_every_keepalive_leak(variant: registry.Variant, scenario: str) -> None:
    """What uvicorn's --reset-contextvars does: one connection then behaves exactly like separate connections, and
    (but for a variant that keeps a startup Context of its own) what the app set at startup is gone everywhere."""
    found = conformance.verdicts(variant, scenario, fresh_context=True)
    if variant.exact:
        assert set(found) == variant.expected_with_fresh_context()
    else:  # a module global is no ContextVar: a fresh Context cannot reset it
        assert variant.expected_in(scenario) <= set(found)


def test_the_negative_control_is_caught_leaking_under_concurrency() -> None:
    found = conformance.verdicts(registry.get("global_state"), registry.CONCURRENT)
    assert sum(count for name, count in found.items() if name.endswith(":leak")) > conformance.REQUESTS_PER_SCENARIO


def test_a_mismatch_is_reported() -> None:
    """The gate itself can fail: a variant checked against another's expectations is rejected."""
    found = conformance.verdicts(registry.get("contextvar_conditional"), registry.KEEPALIVE)
    assert conformance.problems(registry.get("request_state"), found, frozenset())
