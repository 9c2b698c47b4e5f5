"""Drive a variant in-process under a scenario and compare its verdicts with the registry (the benchmark gate)."""

from __future__ import annotations

from collections import Counter

from apps.harness import inprocess, observability, registry, traffic
from apps.harness.checker import tally

REQUESTS_PER_SCENARIO = 600  # at least 500: a third anonymous, GET/POST/stream interleaved


class NonOkStatus(AssertionError):
    pass


def verdicts(
    variant: registry.Variant, scenario: str, count: int = REQUESTS_PER_SCENARIO, fresh_context: bool = False
) -> Counter[str]:
    """Failure counts (`checkpoint.field:verdict`) over `count` mixed requests with unique ids."""
    app = variant.load()
    specs = traffic.mix(count, prefix=f"{variant.name}-{scenario}")
    if scenario == registry.CONCURRENT:
        replies = inprocess.run(inprocess.concurrently(app, specs))
    else:
        from_reads = scenario == registry.KEEPALIVE_READS
        replies = inprocess.run(inprocess.chained(app, specs, fresh_context=fresh_context, from_reads=from_reads))
    statuses = Counter(reply.status for reply in replies)
    if set(statuses) != {200}:
        raise NonOkStatus(f"{variant.name} under {scenario}: statuses {dict(statuses)}")
    traces = observability.TraceLog()  # one run: a trace id the client did not send may appear once
    return tally(
        observability.judge(spec.sent, spec.traceparent, reply.headers, reply.json(), traces)
        for spec, reply in zip(specs, replies, strict=True)
    )


def problems(variant: registry.Variant, found: Counter[str] | set[str], expected: frozenset[str]) -> list[str]:
    """Why `found` does not match the registry (empty when it does)."""
    found = set(found)
    if variant.exact and found != expected:
        return [f"unexpected {sorted(found - expected)}, missing {sorted(expected - found)}"]
    if not variant.exact and not expected <= found:
        return [f"the control was not caught: missing {sorted(expected - found)}"]
    return []


def scenario_problems(variant: registry.Variant, counts: dict[str, Counter[str] | dict[str, int]]) -> list[str]:
    """`scenario: problem` lines for verdict counts already measured per registry scenario."""
    return [
        f"{scenario}: {problem}"
        for scenario in registry.SCENARIOS
        for problem in problems(variant, set(counts[scenario]), variant.expected_in(scenario))
    ]
