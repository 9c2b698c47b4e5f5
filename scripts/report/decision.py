"""The decision table and the recommendation, computed from the raw results (nothing here is written by hand)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from apps.harness import registry
from apps.harness.checker import Failure, leaks
from apps.harness.contract import ENTRY
from scripts.bench.verify import fresh
from scripts.load import bounds
from scripts.load import servers as serverconfig
from scripts.load.verdicts import (  # noqa: F401 - re-exported: the report and its tests name them through decision
    CORRECT,
    CORRECT_WITH,
    DIRECT,
    DROPS_STARTUP,
    LEAKS,
    LOSES,
    NOT_CANDIDATES,
    NOT_RUN,
    SERVER_VERDICTS,
    STALE_AT_ENTRY,
    ServerVerdict,
    grid_cells,
    per_server,
)
from scripts.report import limits

IMMUNE = "correct everywhere tried"
# correct everywhere, but what the app set before its first request is gone (checker.DROPPED, never a leak)
IMMUNE_DROPS = "correct everywhere tried, drops startup context"
SAFE_WITH_RESET = "correct only with a fresh-Context setting"
RESET_DROPS = " (which drops startup context)"
IN_PROCESS, LOAD = "in-process ", "load "  # how a place's name starts: where the failure counts came from


@dataclass
class Outcome:
    """Where one variant failed: `where` maps a place (in-process scenario or load run) to its failure counts."""

    where: dict[str, Counter[str]] = field(default_factory=dict)
    reset_twin: dict[str, str] = field(default_factory=dict)  # place -> the same place with a fresh Context
    errors: Counter[str] = field(default_factory=Counter)  # failures that are not leak/lost (status, transport)

    def add(self, place: str, counts: dict[str, int], twin: str | None = None) -> None:
        self.where[place] = Counter({n: c for n, c in counts.items() if Failure.parse(n).judged})
        self.errors.update({n: c for n, c in counts.items() if not Failure.parse(n).judged})
        if twin is not None:
            self.reset_twin[place] = twin

    def drops_startup(self, twins: bool = False) -> bool:
        """Whether a startup value was out of sight at some place (`twins`: at a fresh-Context twin place)."""
        places = set(self.reset_twin.values()) if twins else set(self.where) - set(self.reset_twin.values())
        found = [self.where[place] for place in places if place in self.where]
        return any(Failure.parse(name).is_dropped for counts in found for name, n in counts.items() if n)

    def failing(self) -> dict[str, Counter[str]]:
        return {place: counts for place, counts in self.where.items() if sum(counts.values())}

    def names(self) -> Counter[str]:
        """Failure counts by name, summed over every place."""
        return sum(self.failing().values(), Counter())

    def leaks_fixed_by_reset(self) -> bool:
        """Every place that leaked was also run with a fresh Context per request, and that run leaked nothing."""
        leaked = [place for place, counts in self.where.items() if _leaks(counts)]
        twins = [self.reset_twin.get(place) for place in leaked]
        return all(twin in self.where and not _leaks(self.where[twin]) for twin in twins)


def _leaks(counts: Counter[str]) -> list[str]:
    return leaks(name for name, count in counts.items() if count)


@dataclass
class Row:
    variant: registry.Variant
    outcome: Outcome
    verdict: str
    bench: dict | None
    load_cost: dict | None
    limits: list[str]
    instructions: dict[str, dict] = field(default_factory=dict)  # method -> the instruction-count summary row


def leak_lost(counts: dict[str, int]) -> str:
    leak = sum(n for name, n in counts.items() if Failure.parse(name).is_leak)
    lost = sum(n for name, n in counts.items() if Failure.parse(name).is_lost)
    return "0" if not leak and not lost else f"{leak} leak / {lost} lost"


def classify(outcome: Outcome) -> str:
    """The worst leak found anywhere (told apart when a fresh Context removes it), then whether context was lost."""
    names = Counter({name: n for name, n in outcome.names().items() if not Failure.parse(name).is_dropped})
    if not outcome.where:
        return NOT_RUN
    if not names:
        return IMMUNE_DROPS if outcome.drops_startup() else IMMUNE
    parts = []
    leaked = _leaks(names)
    fixed = outcome.leaks_fixed_by_reset()
    if any(Failure.parse(name).point != ENTRY for name in leaked):
        parts.append(f"{LEAKS} (none with a fresh-Context setting)" if fixed else LEAKS)
    elif leaked:
        setting = SAFE_WITH_RESET + (RESET_DROPS if outcome.drops_startup(twins=True) else "")
        parts.append(setting if fixed else STALE_AT_ENTRY)
    if any(Failure.parse(name).is_lost for name in names):
        parts.append(LOSES)
    return "; ".join(parts)


def outcomes(sources: dict[str, dict | None]) -> dict[str, Outcome]:
    found = {variant.name: Outcome() for variant in registry.VARIANTS}
    verify = sources.get("verify")
    if verify:
        for name, data in verify["variants"].items():
            for scenario, counts in data["failures"].items():
                twin = f"{IN_PROCESS}{fresh(scenario)}" if scenario in registry.CHAINED else None
                found[name].add(f"{IN_PROCESS}{scenario}", counts, twin)
    for name, place, counts, twin in load_places(sources.get("load")):
        found[name].add(place, counts, twin)
    return found


def load_places(load: dict | None) -> list[tuple[str, str, dict[str, int], str | None]]:
    """(variant, place, failure counts, the same place with its fresh-Context setting, if any) per leak-grid cell."""
    places = []
    for cell in grid_cells(load):  # behind every front the runs had: a leak behind a proxy is a leak too
        twin = serverconfig.get(cell["server"]).reset_twin
        via = "" if cell.get("front", DIRECT) == DIRECT else f" via {cell['front']}"
        place = f"{LOAD}{cell['scenario']} on {cell['server']}{via}"
        twin_place = f"{LOAD}{cell['scenario']} on {twin}{via}" if twin else None
        places.append((cell["variant"], place, cell["failures"], twin_place))
    return places


def bench_by_variant(bench: dict | None) -> dict[str, dict[str, dict]]:
    """variant -> method -> the summary row of that app benchmark."""
    rows: dict[str, dict[str, dict]] = {}
    for row in (bench or {}).get("apps", []):
        if row.get("series", "main") == "main":
            rows.setdefault(row["variant"], {})[row["method"]] = row
    return rows


def instructions_by_variant(bench: dict | None) -> dict[str, dict[str, dict]]:
    """variant -> method -> its instruction-count row (`make bench MODE=instructions`), if counted."""
    rows: dict[str, dict[str, dict]] = {}
    for row in ((bench or {}).get("instructions") or {}).get("apps", []):
        rows.setdefault(row["variant"], {})[row["method"]] = row
    return rows


def load_cost_by_variant(load: dict | None) -> dict[str, dict]:
    cost = (load or {}).get("cost") or {}
    aa = (cost.get("aa_ratio") or {}).get("median")
    return {name: {**figures, "aa_ratio": aa} for name, figures in (cost.get("variants") or {}).items()}


def decide(sources: dict[str, dict | None]) -> list[Row]:
    found = outcomes(sources)
    bench = bench_by_variant(sources.get("bench"))
    cost = load_cost_by_variant(sources.get("load"))
    instructions = instructions_by_variant(sources.get("bench"))
    return [
        Row(
            v,
            found[v.name],
            classify(found[v.name]),
            bench.get(v.name),
            cost.get(v.name),
            limits.limits_of(v.mechanism, sources.get("matrix")),
            instructions.get(v.name, {}),
        )
        for v in registry.VARIANTS
    ]


def recommendation_lines(rows: list[Row]) -> list[str]:
    """The recommendation in full: the approaches correct everywhere (the cheapest, or a tie), then the rest."""
    candidates = recommendable(rows)
    immune = [row for row in candidates if row.verdict == IMMUNE]
    lines = ["## Recommendation", ""]
    if not any(row.outcome.where for row in rows):
        return [*lines, "No results yet: run `make bench`, `make sweep`, `make matrix`, then `make report`."]
    lines.append(answer(rows))
    others = [row for row in cost_order(immune) if row not in cheapest(immune)]
    if others:
        lines.append("Equally correct, and resolved as dearer: " + ", ".join(_named(row) for row in others) + ".")
    drops = cost_order([row for row in candidates if row.verdict == IMMUNE_DROPS])
    if drops:
        lines += [
            "",
            "Correct everywhere, but each request runs in an empty `Context`, so what the app set before its first "
            "request (a ContextVar set at import, decimal precision, structlog's global binds) is gone in every "
            "request: " + ", ".join(_named(r) for r in drops) + ".",
        ]
    safe_with_reset = cost_order([row for row in candidates if row.verdict.startswith(SAFE_WITH_RESET)])
    if safe_with_reset:
        lines += [
            "",
            "Correct below the context layer, but on a keep-alive connection the previous request's context is "
            "visible at entry (to anything that runs before the context is set) on the servers' default settings. "
            "Every cell where they leaked was also run with the server's fresh-Context setting (uvicorn's "
            "`--reset-contextvars`, the gunicorn reset worker) and leaked nothing there, so they are correct "
            "with it: "
            + ", ".join(_named(r) + (RESET_DROPS if r.verdict.endswith(RESET_DROPS) else "") for r in safe_with_reset)
            + ".",
        ]
    stale = [row for row in candidates if row.verdict == STALE_AT_ENTRY]
    if stale:
        lines += [
            "",
            "Stale context at entry, and not every leaking cell had a clean fresh-Context twin (some servers have no "
            "such setting; see the recommendation per server): "
            + ", ".join(f"`{r.variant.name}`" for r in stale)
            + ".",
        ]
    bad = [row for row in candidates if LEAKS in row.verdict or LOSES in row.verdict]
    if bad:
        lines += ["", "Avoid: " + "; ".join(f"`{row.variant.name}` ({row.verdict})" for row in bad) + "."]
    never = [row for row in rows if row.variant.category in NEVER_RECOMMENDED]
    if never:
        lines += [
            "",
            "Never recommended, whatever they do here (controls and pitfalls, shown to be caught): "
            + "; ".join(f"`{row.variant.name}` ({row.variant.category}: {row.verdict})" for row in never)
            + ".",
        ]
    lines += [
        "",
        "This rests on: the in-process verdicts (`results/verify/`), the load leak grid "
        "(`results/load/summary.json`) and the microbenchmark summary (`results/bench/summary.json`). Costs are "
        "ranked only by differences the measurements resolve: instructions per request beyond the A/A band first, "
        "paired CPU time beyond its significance threshold second; anything closer is a tie.",
    ]
    return lines


def _named(row: Row) -> str:
    return f"`{row.variant.name}`{cost_phrase(row)}"


def answer(rows: list[Row]) -> str:
    """One sentence: what to use, from the verdicts and the resolved costs (a tie is said, never a winner)."""
    immune = [row for row in recommendable(rows) if row.verdict == IMMUNE]
    if not immune:
        return "No approach was correct in every scenario and server configuration tried."
    best = cheapest(immune)
    where = "correct in every scenario and server configuration tried"
    if len(best) == 1:
        return f"**Use `{best[0].variant.name}`** ({best[0].variant.mechanism}): {where}, and the cheapest of those."
    names = ", ".join(f"`{row.variant.name}`" for row in best)
    return f"**Use any of {names}**: {where}, and no cost difference between them that the measurements resolve."


SETTING_DROPS_PHRASE = "what the app set before its first request is gone"
RANKING_METHOD = "get"
# Never advised, whatever their results: a control is there to be caught, a pitfall to show a mistake. Where one
# passes, the report says so, and says where it fails.
NEVER_RECOMMENDED = (registry.CONTROL, registry.PITFALL)


def recommendable(rows: list[Row]) -> list[Row]:
    return [row for row in rows if row.variant.category not in NEVER_RECOMMENDED]


def _instructions(row: Row) -> tuple[float, float] | None:
    """(instructions per request, the A/A band in %) of the ranking method, when counted."""
    counted = row.instructions.get(RANKING_METHOD)
    if not counted:
        return None
    versus = counted.get("vs_baseline") or {}
    return counted["instructions"], versus.get("threshold_pct", 0.0)


def _cpu(row: Row) -> tuple[float, float] | None:
    """(added % over baseline, the comparison's significance threshold in %) of the paired CPU time, when timed."""
    comparison = _comparison(row)
    if not comparison:
        return None
    return comparison["added_pct"], comparison.get("threshold_pct", float("inf"))


def resolved_cheaper(a: Row, b: Row) -> bool:
    """Whether `a` costs less than `b` by a difference the measurement resolves.

    Instructions first (deterministic): resolved when the counts differ by more than the A/A band (baseline against
    its own copy), the larger of the two rows' bands. CPU time second, only where either row has no count: resolved
    when the paired added shares differ by more than both thresholds together.
    """
    counts_a, counts_b = _instructions(a), _instructions(b)
    if counts_a and counts_b:
        band = max(counts_a[1], counts_b[1])
        return (counts_b[0] - counts_a[0]) / counts_a[0] * 100 > band
    cpu_a, cpu_b = _cpu(a), _cpu(b)
    if cpu_a and cpu_b:
        return cpu_b[0] - cpu_a[0] > cpu_a[1] + cpu_b[1]
    return False


def cost_order(rows: list[Row]) -> list[Row]:
    """Cheapest first by instructions (then CPU); the order only, ties are told by `cheapest`."""

    def key(row: Row) -> tuple[float, float]:
        counted, cpu = _instructions(row), _cpu(row)
        return (counted[0] if counted else float("inf"), cpu[0] if cpu else float("inf"))

    return sorted(rows, key=key)


def cheapest(rows: list[Row]) -> list[Row]:
    """The rows no other row is resolved cheaper than: one row is "the cheapest", several are a tie."""
    return [row for row in cost_order(rows) if not any(resolved_cheaper(other, row) for other in rows)]


def cheapest_phrase(rows: list[Row]) -> str:
    """`cheapest: `x`` or `tie for cheapest (within the measurement's resolution): `x`, `y``."""
    best = cheapest(rows)
    if not best:
        return ""
    if len(best) == 1:
        return f"cheapest: `{best[0].variant.name}`{cost_phrase(best[0])}"
    names = ", ".join(f"`{row.variant.name}`" for row in best)
    return f"tie for cheapest (no difference the measurements resolve): {names}"


def best_comparison(bench_row: dict) -> dict | None:
    """The paired comparison when there is one (both apps timed in the same blocks), else the independent one."""
    return bench_row.get("paired_vs_baseline") or bench_row.get("vs_baseline")


def _comparison(row: Row) -> dict | None:
    bench_row = (row.bench or {}).get(RANKING_METHOD)
    return best_comparison(bench_row) if bench_row else None


def cost_phrase(row: Row) -> str:
    """The added cost per GET over baseline: instructions (with the A/A band) first, CPU time second."""
    parts = []
    counted = (row.instructions.get(RANKING_METHOD) or {}).get("vs_baseline")
    if counted:
        parts.append(f"{counted['added_pct']:+.2f}% instructions, A/A band ±{counted['threshold_pct']:.2f}%")
    comparison = _comparison(row)
    if comparison:
        parts.append(f"{comparison['added_us']:+.1f} µs CPU, {comparison['verdict']}")
    return f" ({'; '.join(parts)} per GET over baseline)" if parts else ""


def where_failed(outcome: Outcome) -> str:
    """Compact: in-process scenarios, load runs grouped by server config, the checkpoints beyond entry, errors."""
    failing = outcome.failing()
    parts = []
    in_process = {p.removeprefix(IN_PROCESS): c for p, c in failing.items() if p.startswith(IN_PROCESS)}
    if in_process:
        parts.append("in-process: " + ", ".join(f"{scenario} ({leak_lost(c)})" for scenario, c in in_process.items()))
    load = {p.removeprefix(LOAD): c for p, c in failing.items() if p.startswith(LOAD)}
    if load:
        by_server: dict[str, list[str]] = {}
        for place in load:
            scenario, server = place.split(" on ")
            by_server.setdefault(server, []).append(scenario)
        all_scenarios = {p.removeprefix(LOAD).split(" on ")[0] for p in outcome.where if p.startswith(LOAD)}
        by_scenarios: dict[tuple[str, ...], list[str]] = {}  # servers that failed on the same scenarios, together
        for server, scenarios in by_server.items():
            by_scenarios.setdefault(tuple(sorted(scenarios)), []).append(server)
        cells = sum(1 for place in outcome.where if place.startswith(LOAD))
        servers = "; ".join(
            f"{'every scenario' if set(scenarios) == all_scenarios else ', '.join(scenarios)} on {', '.join(names)}"
            for scenarios, names in by_scenarios.items()
        )
        total = sum(load.values(), Counter())
        parts.append(f"load: {len(load)} of {cells} cells ({leak_lost(total)}): {servers}")
    leaked = [Failure.parse(name) for name in _leaks(outcome.names())]
    downstream = sorted({failure.where for failure in leaked if failure.point != ENTRY})
    if downstream:
        parts.append(f"leaked at: {', '.join(downstream)}")
    elif leaked:
        parts.append("leaks only at entry")
    if outcome.errors:
        parts.append(f"other failures (status, transport): {sum(outcome.errors.values())}")
    return "<br>".join(parts) or "nowhere"


def table_lines(rows: list[Row]) -> list[str]:
    lines = [
        "## Decision table",
        "",
        "| approach | what it is | carried by | verdict | where it failed | µs/request added (in-process) "
        "| instructions/request (in-process) | server CPU µs/request (load) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        where = where_failed(row.outcome)
        lines.append(
            f"| `{row.variant.name}` | {row.variant.category} | {row.variant.mechanism} | {row.verdict} | {where} "
            f"| {_bench_cell(row.bench)} | {_instructions_cell(row.instructions)} | {_load_cost_cell(row.load_cost)} |"
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
    cells = []
    for method, row in sorted(bench.items()):
        comparison = best_comparison(row)
        added = (
            f", {comparison['added_us']:+.1f} µs {comparison['design']} ({comparison['verdict']})"
            if comparison
            else " (the floor)"
        )
        cells.append(f"{method.upper()} {row['median_us']:.1f} µs ±{row['stdev_pct']:.1f}%{added}")
    return "<br>".join(cells)


def _instructions_cell(rows: dict[str, dict]) -> str:
    """Instructions per request and the added share over baseline (callgrind: does not move with the host)."""
    cells = []
    for method, row in sorted(rows.items()):
        versus = row.get("vs_baseline")
        added = f", {versus['added_pct']:+.2f}% ({versus['verdict']})" if versus else " (the floor)"
        cells.append(f"{method.upper()} {row['instructions'] / 1e6:.3f} M{added}")
    return "<br>".join(cells) or "-"


def _load_cost_cell(cost: dict | None) -> str:
    if not cost or cost.get("server_us_per_request_median") is None:
        return "-"
    text = f"{cost['server_us_per_request_median']:.0f} µs"
    if cost.get("ratio_vs_baseline_median") is not None:
        text += f", {cost['ratio_vs_baseline_median']:.3f}× baseline [{cost['ratio_min']:.3f}–{cost['ratio_max']:.3f}]"
    return text + (f" (A/A {cost['aa_ratio']:.3f})" if cost.get("aa_ratio") else "")


# --- Per server kind: the rule lives in scripts.load.verdicts, shared with the soak ---------------------------------
def server_kinds(load: dict | None) -> list[str]:
    """The server kinds in the leak grid, in the order of servers.KINDS."""
    seen = {serverconfig.get(cell["server"]).kind for cell in (load or {}).get("leak_grid", [])}
    return [kind for kind in serverconfig.KINDS if kind in seen]


def per_server_lines(rows: list[Row], load: dict | None) -> list[str]:
    """The recommendation per server kind: correct, correct only with a setting, or leaking; the cheapest correct."""
    verdicts = per_server(load)
    behind = per_server(load, proxies_only=True)
    kinds = server_kinds(load)
    if not kinds:
        return []
    candidates = recommendable(rows)
    never = [row for row in rows if row.variant.category in NEVER_RECOMMENDED]
    lines = [
        "## Recommendation per server",
        "",
        "After each approach called correct: the validated requests behind it on that kind (every default "
        "configuration and scenario) and the 95% upper bound on the share of requests that could fail unseen (0 in n: "
        f"1 − 0.05^(1/n)); the target is {bounds.CORRECT_PAIR_TARGET:,} requests "
        f"(≤ {bounds.clean_bound(bounds.CORRECT_PAIR_TARGET) * 100:.2g}%).",
        "",
    ]
    for kind in kinds:
        mine = {row.variant.name: verdicts.get((row.variant.name, kind)) for row in rows}

        def having(group: list[Row], *wanted: str, on: dict = mine) -> list[Row]:
            return [r for r in group if on[r.variant.name] and on[r.variant.name].verdict in wanted]

        correct = cost_order(having(candidates, CORRECT))
        dropping = cost_order(having(candidates, DROPS_STARTUP))
        with_setting = cost_order(having(candidates, CORRECT_WITH))
        configs = sorted({c["server"] for c in (load or {}).get("leak_grid", []) if _kind(c["server"]) == kind})
        parts = [f"**{kind}** ({', '.join(configs)}):"]
        if correct:
            parts.append(
                f"{cheapest_phrase(correct)}; correct: "
                + ", ".join(f"`{r.variant.name}` ({_pair_bound(mine[r.variant.name])})" for r in correct)
                + "."
            )
        else:
            parts.append("no approach was correct on its default settings.")
        if dropping:
            names = ", ".join(f"`{r.variant.name}`" for r in dropping)
            parts.append(f"Correct, but {SETTING_DROPS_PHRASE}: {names}.")
        if with_setting:
            settings = ", ".join(f"`{r.variant.name}` ({mine[r.variant.name].setting})" for r in with_setting)
            parts.append(f"Correct only with a setting: {settings}.")
        bad = having(candidates, STALE_AT_ENTRY, LEAKS)
        if bad:
            parts.append(
                "Leak: " + ", ".join(f"`{r.variant.name}` ({mine[r.variant.name].verdict})" for r in bad) + "."
            )
        losing = having(candidates, LOSES)
        if losing:
            parts.append("Lose context: " + ", ".join(f"`{r.variant.name}`" for r in losing) + ".")
        parts += _behind_proxy_phrase(candidates, behind, kind)
        passing = having(never, CORRECT, DROPS_STARTUP, CORRECT_WITH)
        if passing:
            parts.append(
                "Passes here but never recommended: "
                + ", ".join(f"`{r.variant.name}` ({where_it_fails(r.variant.name, verdicts, kinds)})" for r in passing)
                + "."
            )
        lines += ["- " + " ".join(parts)]
    return lines


def _behind_proxy_phrase(candidates: list[Row], behind: dict[tuple[str, str], ServerVerdict], kind: str) -> list[str]:
    """What holds behind the reverse proxies the runs put in front of this kind (nothing when none was run)."""
    found = {r.variant.name: behind[(r.variant.name, kind)] for r in candidates if (r.variant.name, kind) in behind}
    if not found:
        return []
    groups = {
        "leak": [name for name, v in found.items() if v.verdict in (STALE_AT_ENTRY, LEAKS)],
        "correct": [name for name, v in found.items() if v.verdict == CORRECT],
        "correct, dropping startup context": [name for name, v in found.items() if v.verdict == DROPS_STARTUP],
        "correct only with a setting": [name for name, v in found.items() if v.verdict == CORRECT_WITH],
    }
    said = [f"{what}: " + ", ".join(f"`{name}`" for name in names) for what, names in groups.items() if names]
    return ["Behind a reverse proxy, " + "; ".join(said) + "."] if said else []


def where_it_fails(variant: str, verdicts: dict[tuple[str, str], ServerVerdict], kinds: list[str]) -> str:
    """`a pitfall: correct on hypercorn, granian; leaks another request's data on uvicorn, gunicorn, daphne`."""
    by_verdict: dict[str, list[str]] = {}
    for kind in kinds:
        verdict = verdicts.get((variant, kind))
        if verdict is not None:
            by_verdict.setdefault(verdict.verdict, []).append(kind)
    role = registry.get(variant).category
    ordered = sorted(by_verdict.items(), key=lambda item: SERVER_VERDICTS.index(item[0]))  # where it passes first
    said = "; ".join(f"{verdict} on {', '.join(names)}" for verdict, names in ordered)
    return f"a {role}: {said}"


def _pair_bound(verdict: ServerVerdict) -> str:
    """The 95% bound on the failure share a pair called correct could hide, and whether it meets the pair target."""
    short = "" if verdict.requests >= bounds.CORRECT_PAIR_TARGET else f", under {bounds.CORRECT_PAIR_TARGET:,}"
    return f"{verdict.requests:,} requests, {bounds.bound_text(verdict.requests)}{short}"


def _kind(label: str) -> str:
    return serverconfig.get(label).kind
