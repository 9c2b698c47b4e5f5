"""What the soak runs: the (variant, server configuration) pairs the report calls correct, and each one's share."""

from __future__ import annotations

import math
from pathlib import Path

from apps.harness import registry
from scripts.common.results import LOAD_DIR, read_json
from scripts.load import servers as serverconfig
from scripts.load import verdicts

LOAD_SUMMARY = LOAD_DIR / "summary.json"

Pair = tuple[str, serverconfig.ServerConfig]


def from_summary(path: Path = LOAD_SUMMARY) -> list[Pair]:
    """The pairs the report calls correct, computed from the load summary by the rule the report uses."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make sweep` (and `ctxbench loadstats`) first")
    return verdicts.correct_pairs(read_json(path))


def parse_pair(text: str) -> Pair:
    """`variant:label`, e.g. `contextvar_isolated:uvloop-httptools` (an explicit plan, for tests and reruns)."""
    variant, sep, label = text.partition(":")
    if not sep:
        raise ValueError(f"expected VARIANT:SERVER_LABEL, got {text!r}")
    return registry.get(variant).name, serverconfig.get(label)


def share(budget: int, pairs: int) -> int:
    """Requests for every pair: the budget over the pairs, the same for each. A pair overshoots its share (segments end
    on time, not on a count), and that adds to the total instead of shortening the pairs after it: the first soak
    shared what was left, and its last 10 pairs got under 5,000 requests after the warm-up, too few to judge memory."""
    return max(1, math.ceil(budget / max(1, pairs)))
