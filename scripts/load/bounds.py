"""How rare a failure a clean verdict could have missed: the 95% upper bound on the failure share for 0 in n."""

from __future__ import annotations

CONFIDENCE = 0.95
CLEAN_CELL_TARGET = 300  # validated requests behind a clean cell: bound <= 1%
CORRECT_PAIR_TARGET = 3_000  # validated requests behind an (approach, server kind) pair called correct: bound <= 0.1%


def clean_bound(requests: int, confidence: float = CONFIDENCE) -> float | None:
    """Exact one-sided binomial bound p with (1 - p) ** n = 1 - confidence; None when nothing was validated.

    With 0 failures in n requests, any failure share above it would have shown at least once with probability
    `confidence`. It is close to the rule of three (3 / n) for large n and slightly below it.
    """
    if requests <= 0:
        return None
    return 1.0 - (1.0 - confidence) ** (1.0 / requests)


def rule_of_three(requests: int) -> float | None:
    return 3.0 / requests if requests > 0 else None


def bound_text(requests: int, failing: bool = False) -> str:
    """'≤ 0.99%' for a clean count, '-' when it failed (no bound: it was seen) or nothing was validated."""
    bound = clean_bound(requests)
    if failing or bound is None:
        return "-"
    return f"≤ {bound * 100:.2g}%"
