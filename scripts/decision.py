"""The decision table and the recommendation, computed from the raw results (nothing here is written by hand)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from apps import registry
from apps.contract import ENTRY
from scripts import limits
from scripts.verify import KEEPALIVE_FRESH

IMMUNE = "correct everywhere tried"
SAFE_WITH_RESET = "correct only with --reset-contextvars"
STALE_AT_ENTRY = "stale context at entry"
LEAKS = "leaks another request's data"
LOSES = "loses context"
NOT_CANDIDATES = (registry.CONTROL,)


@dataclass
class Outcome:
    """Where one variant failed: `where` maps a place (in-process scenario or load run) to its failure counts."""

    where: dict[str, Counter[str]] = field(default_factory=dict)
    reset_only: set[str] = field(default_factory=set)  # places that ran with --reset-contextvars

    def failing(self) -> dict[str, Counter[str]]:
        return {place: counts for place, counts in self.where.items() if sum(counts.values())}


@dataclass
class Row:
    variant: registry.Variant
    outcome: Outcome
    verdict: str
    bench: dict | None
    load_cost: dict | None
    limits: list[str]


def leak_lost(counts: dict[str, int]) -> str:
    leak = sum(n for name, n in counts.items() if name.endswith(":leak"))
    lost = sum(n for name, n in counts.items() if name.endswith(":lost"))
    return "0" if not leak and not lost else f"{leak} leak / {lost} lost"


def classify(outcome: Outcome) -> str:
    """The worst thing that happened anywhere; entry-only leaks that a fresh Context removes are told apart."""
    failing = outcome.failing()
    if not failing:
        return IMMUNE
    names: Counter[str] = Counter()
    for counts in failing.values():
        names.update(counts)
    fixed_by_reset = bool(outcome.reset_only) and not set(failing) & outcome.reset_only
    if any(name.endswith(":leak") and not name.startswith(f"{ENTRY}.") for name in names):
        verdict = LEAKS
    elif any(name.endswith(":lost") for name in names):
        verdict = LOSES
    else:
        return SAFE_WITH_RESET if fixed_by_reset else STALE_AT_ENTRY
    return f"{verdict} (none with --reset-contextvars)" if fixed_by_reset else verdict


def outcomes(sources: dict[str, dict | None]) -> dict[str, Outcome]:
    found = {variant.name: Outcome() for variant in registry.VARIANTS}
    verify = sources.get("verify")
    if verify:
        for name, data in verify["variants"].items():
            for scenario, counts in data["failures"].items():
                place = f"in-process {scenario}"
                found[name].where[place] = Counter(counts)
                if scenario == KEEPALIVE_FRESH:
                    found[name].reset_only.add(place)
    for name, place, counts, reset in load_places(sources.get("load")):
        found[name].where[place] = Counter(counts)
        if reset:
            found[name].reset_only.add(place)
    return found


def load_places(load: dict | None) -> list[tuple[str, str, dict[str, int], bool]]:
    """(variant, place, failure counts, ran with --reset-contextvars) for every cell of the load leak grid."""
    if not load:
        return []
    return [
        (
            cell["variant"],
            f"load {cell['scenario']} on {cell['server_config']}",
            cell["failures"],
            cell["reset_contextvars"],
        )
        for cell in load.get("leak_grid", [])
    ]


def decide(sources: dict[str, dict | None]) -> list[Row]:
    found = outcomes(sources)
    bench = (sources.get("bench") or {}).get("apps", {})
    cost = (sources.get("load") or {}).get("cost", {})
    return [
        Row(
            v,
            found[v.name],
            classify(found[v.name]),
            bench.get(v.name),
            cost.get(v.name),
            limits.limits_of(v.mechanism, sources.get("matrix")),
        )
        for v in registry.VARIANTS
    ]


def recommendation_lines(rows: list[Row]) -> list[str]:
    candidates = [row for row in rows if row.variant.category not in NOT_CANDIDATES]
    immune = [row for row in candidates if row.verdict == IMMUNE]
    lines = ["## Recommendation", ""]
    if not any(row.outcome.where for row in rows):
        return [*lines, "No results yet: run `make bench`, `make sweep`, `make matrix`, then `make report`."]
    if immune:
        ranked = sorted(immune, key=lambda row: _added_us(row) if _added_us(row) is not None else float("inf"))
        best = ranked[0]
        cheapest = ", and the cheapest of those in-process" if _added_us(best) is not None else ""
        lines.append(
            f"**{best.variant.name}** ({best.variant.mechanism}): no leak and no lost context in any scenario or "
            f"server configuration tried{cheapest}{_cost_phrase(best)}."
        )
        others = ", ".join(f"`{row.variant.name}`{_cost_phrase(row)}" for row in ranked[1:])
        if others:
            lines.append(f"Equally correct: {others}.")
    else:
        lines.append("No candidate was correct in every scenario and server configuration tried.")
    conditional = [row for row in candidates if row.verdict in (SAFE_WITH_RESET, STALE_AT_ENTRY)]
    if conditional:
        lines += [
            "",
            "Correct below the context layer, but the previous request's context is visible at entry "
            "on a keep-alive connection unless every request starts in a fresh Context "
            "(uvicorn `--reset-contextvars`): " + ", ".join(f"`{r.variant.name}`" for r in conditional) + ".",
        ]
    bad = [row for row in candidates if row.verdict.startswith((LEAKS, LOSES))]
    if bad:
        lines += ["", "Avoid: " + "; ".join(f"`{row.variant.name}` ({row.verdict})" for row in bad) + "."]
    lines += [
        "",
        "This rests on: the in-process verdicts (`results/verify/`), the load leak grid "
        "(`results/load/summary.json`) and the microbenchmark summary (`results/bench/summary.json`).",
    ]
    return lines


def _added_us(row: Row) -> float | None:
    if not row.bench:
        return None
    return row.bench.get("added_us")


def _cost_phrase(row: Row) -> str:
    added = _added_us(row)
    if added is None:
        return ""
    significant = row.bench.get("significant", True) if row.bench else True
    return f" (+{added:.1f} µs per request over baseline{'' if significant else ', not significant'})"


def table_lines(rows: list[Row]) -> list[str]:
    lines = [
        "## Decision table",
        "",
        "| approach | category | carried by | verdict | where it failed | µs/request added (in-process) "
        "| server CPU µs/request (load) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        failing = row.outcome.failing()
        where = "<br>".join(f"{place}: {leak_lost(counts)}" for place, counts in failing.items()) or "nowhere"
        lines.append(
            f"| `{row.variant.name}` | {row.variant.category} | {row.variant.mechanism} | {row.verdict} | {where} "
            f"| {_bench_cell(row.bench)} | {_load_cost_cell(row.load_cost)} |"
        )
    return lines


def limits_lines(rows: list[Row]) -> list[str]:
    """What each way of carrying context cannot do (matrix-confirmed, or true by construction)."""
    lines = ["## What each mechanism cannot do", ""]
    seen: dict[str, list[str]] = {}
    for row in rows:
        seen.setdefault(row.variant.mechanism, row.limits)
    for mechanism, sentences in seen.items():
        lines.append(f"- **{mechanism}**: " + ("; ".join(sentences) if sentences else "nothing found") + ".")
    return lines


def _bench_cell(bench: dict | None) -> str:
    if not bench:
        return "-"
    text = f"{bench['median_us']:.1f} µs, {bench['added_us']:+.1f} ({bench['ratio']:.3f}×)"
    return text + ("" if bench.get("significant", True) else ", not significant")


def _load_cost_cell(cost: dict | None) -> str:
    if not cost:
        return "-"
    text = f"{cost['cpu_us_per_request']:.0f} µs ({cost['ratio_vs_baseline']:.3f}× baseline"
    return text + (f", A/A {cost['aa_ratio']:.3f})" if cost.get("aa_ratio") else ")")


def detail_sections(sources: dict[str, dict | None]) -> list[str]:
    return []
