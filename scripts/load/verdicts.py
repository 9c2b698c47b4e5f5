"""Per-server verdicts from the load leak grid (a pure function of summary.json), and what the soak should run on.

The report's "Recommendation per server" and the soak must agree on which approaches are correct on which server
configurations, so the rule lives here, below both: the report uses `per_server(load_summary)` (through
scripts.report.decision), the soak uses `correct_pairs(load_summary)`, the (variant, configuration) pairs it implies.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.harness import registry
from apps.harness.checker import Failure
from apps.harness.contract import ENTRY
from scripts.load import servers as serverconfig
from scripts.load.fronts import DIRECT_FRONT

DIRECT = DIRECT_FRONT.label  # cells written before fronts existed carry no front: they were direct

CORRECT = "correct"
# Correct, but every request runs in an empty Context: what the app set before its first request (its decimal
# precision, its structlog binds, a ContextVar set at import) is gone (checker.DROPPED): the app behaves differently.
DROPS_STARTUP = "correct, drops startup context"
CORRECT_WITH = "correct with"  # followed by the setting
STALE_AT_ENTRY = "stale context at entry"
LEAKS = "leaks another request's data"
LOSES = "loses context"
NOT_RUN = "not run"
SERVER_VERDICTS = (CORRECT, DROPS_STARTUP, CORRECT_WITH, STALE_AT_ENTRY, LEAKS, LOSES, NOT_RUN)  # best first
CORRECT_VERDICTS = (CORRECT, DROPS_STARTUP, CORRECT_WITH)
SETTING_DROPS = "drops startup context"  # said after a setting whose runs dropped it
NOT_CANDIDATES = (registry.CONTROL,)  # controls are never recommended, so never soaked as "correct"


@dataclass(frozen=True)
class ServerVerdict:
    """What one approach does on one server kind, over every configuration of that kind the leak hunt ran."""

    verdict: str  # one of SERVER_VERDICTS
    setting: str | None  # the setting that makes it correct, for CORRECT_WITH (and what else it does)
    cells: int
    failing_cells: int
    leak: int
    lost: int
    requests: int
    dropped: int = 0  # startup values out of sight, over the default configurations' cells

    @property
    def label(self) -> str:
        return f"{CORRECT_WITH} {self.setting}" if self.verdict == CORRECT_WITH else self.verdict


def grid_cells(load: dict | None, proxies_only: bool = False) -> list[dict]:
    """The cells verdicts rest on: every front's (`front_grid`) when the summary has them, else the direct grid;
    `proxies_only`: the cells behind a reverse proxy alone."""
    load = load or {}
    cells = load.get("front_grid") or load.get("leak_grid", [])
    if proxies_only:
        return [cell for cell in cells if cell.get("front", DIRECT) != DIRECT]
    return cells


def per_server(load: dict | None, proxies_only: bool = False) -> dict[tuple[str, str], ServerVerdict]:
    """(variant, server kind) -> verdict over every front the runs had (a leak behind a proxy is a leak), or behind
    the proxies alone. A configuration with a fix counts only as the twin of a leaking default behind the same front."""
    cells: dict[tuple[str, str], list[dict]] = {}
    for cell in grid_cells(load, proxies_only):
        cells.setdefault((cell["variant"], serverconfig.get(cell["server"]).kind), []).append(cell)
    return {key: server_verdict(group) for key, group in cells.items()}


def twin_label(cell: dict) -> str | None:
    return serverconfig.get(cell["server"]).reset_twin


def server_verdict(cells: list[dict]) -> ServerVerdict:
    by_place = {(c["server"], c["scenario"], c.get("front", DIRECT)): c for c in cells}
    defaults = [c for c in cells if serverconfig.get(c["server"]).reset_setting is None]
    failing = [c for c in defaults if c["leak"] or c["lost"]]
    leaking = [c for c in defaults if c["leak"]]
    setting = None

    def twins_of(group: list[dict]) -> list[dict | None]:
        return [
            by_place.get((serverconfig.get(c["server"]).reset_twin, c["scenario"], c.get("front", DIRECT)))
            for c in group
        ]

    def clean(twins: list[dict | None]) -> bool:
        return all(twin is not None and not twin["leak"] and not twin["lost"] for twin in twins)

    downstream = any(
        failure.is_leak and failure.point != ENTRY for c in leaking for failure in map(Failure.parse, c["failures"])
    )
    if leaking and not clean(twins_of(leaking)):  # leaking is worse than losing: it is reported first
        verdict = LEAKS if downstream else STALE_AT_ENTRY
    elif failing and clean(twins_of(failing)):  # the setting removes every failure, losses included
        verdict = CORRECT_WITH
        twins = [twin for twin in twins_of(failing) if twin]
        setting = "; ".join(sorted({serverconfig.get(twin["server"]).reset_setting or "" for twin in twins}))
        if any(twin.get("dropped") for twin in twins):
            setting += f", which {SETTING_DROPS}"
    elif failing:
        verdict = LOSES
    elif any(c.get("dropped") for c in defaults):
        verdict = DROPS_STARTUP
    else:
        verdict = CORRECT if defaults else NOT_RUN
    return ServerVerdict(
        verdict,
        setting,
        len(defaults),
        len(failing),
        sum(c["leak"] for c in defaults),
        sum(c["lost"] for c in defaults),
        sum(c["requests"] for c in defaults),
        sum(c.get("dropped", 0) for c in defaults),
    )


def correct_pairs(load: dict | None) -> list[tuple[str, serverconfig.ServerConfig]]:
    """(variant, configuration) the report calls correct: for CORRECT every default configuration of that kind the
    leak hunt ran it on; for CORRECT_WITH the twins with the fix (the default is the one that leaked). Controls are
    left out, as the report leaves them out of its recommendations. Ordered by variant, then label."""
    grid = (load or {}).get("leak_grid", [])
    labels: dict[tuple[str, str], set[str]] = {}
    for cell in grid:
        labels.setdefault((cell["variant"], serverconfig.get(cell["server"]).kind), set()).add(cell["server"])
    pairs: set[tuple[str, str]] = set()
    for (variant, kind), verdict in per_server(load).items():
        if registry.get(variant).category in NOT_CANDIDATES or verdict.verdict not in CORRECT_VERDICTS:
            continue
        with_fix = verdict.verdict == CORRECT_WITH
        for label in labels.get((variant, kind), ()):  # a kind run only behind a proxy has no direct pair to soak
            if (serverconfig.get(label).reset_setting is not None) == with_fix:
                pairs.add((variant, label))
    return [(variant, serverconfig.get(label)) for variant, label in sorted(pairs)]
