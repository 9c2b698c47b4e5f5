"""`make report`: rebuild every summary and chart from the raw results, then write results/REPORT.md from them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from apps.harness import registry
from scripts.bench import bench_charts
from scripts.bench import stats as benchstats
from scripts.bench.verify import MEASURED, VERIFY_JSON
from scripts.common import results as resultfiles
from scripts.common.arguments import existing_dir
from scripts.load import bounds, hunt, load_charts, loadstats, server_instructions
from scripts.load import servers as serverconfig
from scripts.matrix import matrix
from scripts.matrix.matrix import MATRIX_JSON, MATRIX_MD, MATRIX_PNG
from scripts.report import attribution, decision, decision_chart, judging, loop_parser, observability, proxy
from scripts.soak.report import soak_headline, soak_section
from scripts.versions.report import render as render_versions

SOURCES = {
    "verify": VERIFY_JSON,
    "matrix": MATRIX_JSON,
    "bench": resultfiles.BENCH_DIR / "summary.json",
    "load": resultfiles.LOAD_DIR / "summary.json",
    "server_instructions": server_instructions.RESULTS_DIR / server_instructions.RUN_NAME,
}
REPRODUCE = {
    "verify": "make verify (also the gate of make bench)",
    "bench": "make bench",
    "load": "make sweep; make sweep MODE=side|servers|latency|client|curves",
    "matrix": "make matrix",
    "server_instructions": "ctxbench server_instructions",
    "report": "make report",
}


def load_sources(results_dir: Path) -> dict[str, dict | None]:
    sources: dict[str, dict | None] = {}
    for name, path in SOURCES.items():
        located = results_dir / path.relative_to(resultfiles.RESULTS)
        sources[name] = json.loads(located.read_text()) if located.exists() else None
    return sources


def _environment_section(sources: dict[str, dict | None]) -> list[str]:
    lines = ["## Where these figures come from", "", "| result | created (UTC) | git commit | Python | CPU | command |"]
    lines.append("|---|---|---|---|---|---|")
    for name, data in sources.items():
        if data is None:
            lines.append(f"| {name} | missing: run `{REPRODUCE[name]}` | | | | |")
            continue
        env = data.get("environment", {})
        commit = (env.get("git") or {}).get("commit") or "?"
        dirty = " (dirty)" if (env.get("git") or {}).get("dirty") else ""
        lines.append(
            f"| {name} | {env.get('created_utc', '?')} | `{commit[:10]}`{dirty} | {env.get('python', '?')} "
            f"| {env.get('cpu', '?')} ({env.get('cpu_count', '?')} cores) | `{REPRODUCE[name]}` |"
        )
    packages = next((d["environment"]["packages"] for d in sources.values() if d and "environment" in d), {})
    if packages:
        lines += ["", "Packages: " + ", ".join(f"{name} {version}" for name, version in packages.items() if version)]
    return lines


def _verify_section(verify: dict | None) -> list[str]:
    if verify is None:
        return []
    scenarios = [
        scenario for scenario in MEASURED if any(scenario in v["failures"] for v in verify["variants"].values())
    ]
    lines = [
        "## In-process verdicts",
        "",
        "Failures over "
        f"{verify['environment']['parameters']['requests_per_scenario']} mixed requests per scenario "
        "(leak / lost counts; `0` = every checkpoint ok).",
        "",
        "| variant | " + " | ".join(scenarios) + " | matches registry |",
        "|---" * (len(scenarios) + 2) + "|",
    ]
    for name in (v.name for v in registry.VARIANTS if v.name in verify["variants"]):
        data = verify["variants"][name]
        cells = [decision.leak_lost(data["failures"][scenario]) for scenario in scenarios]
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {'yes' if data['conforms'] else 'NO'} |")
    return lines


def _chart(name: str, alt: str) -> str:
    return f"![{alt}]({(resultfiles.CHARTS_DIR / name).relative_to(resultfiles.RESULTS)})"


def _hunt_time_lines(hunt_time: dict | None) -> list[str]:
    """How long the hunt behind the grids took, from its runs' own timing (summary `hunt_time`)."""
    if not hunt_time:
        return []
    lines = ["", "The leak hunt behind these cells (each run's own time: start-ups, load, stop):", ""]
    for key, what in (("direct", "Direct"), ("proxied", "Behind a proxy")):
        figures = hunt_time[key]
        if figures["runs"]:
            capped = f", {figures['capped']} at the time bound" if figures["capped"] else ""
            lines.append(
                f"- {what}: {figures['runs']} runs ({figures['variants']} variants × {figures['configs']} "
                f"configurations, every scenario in each), {figures['seconds'] / 60:.1f} min, median run "
                f"{_fmt(figures['median_run_s'], '.2f')} s{capped}; {figures['first_utc']} to {figures['last_utc']}."
            )
    if record := hunt_time.get("record"):
        where = hunt.HUNT_RUN_JSON.relative_to(resultfiles.RESULTS)
        lines.append(
            f"- The last whole hunt, `ctxbench sweep --mode quick` (`{where}`): {record['runs']} runs in "
            f"{record['seconds'] / 60:.1f} min wall time, ended {record['created_utc']}."
        )
    return lines


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.2g}%"


ALONE = "timed in a run of its own (`ctxbench variant`): paired only, baseline's file is another run's"


def _comparison_cell(comparison: dict | None) -> str:
    if not comparison:
        return "the floor"
    threshold = comparison["threshold_pct"]  # None: one worker per side, no evidence about the spread between them
    limit = f"threshold {threshold:.1f}%" if threshold is not None else "no threshold: one worker per side"
    return f"{comparison['added_us']:+.1f} µs ({comparison['added_pct']:+.1f}%, {limit}): {comparison['verdict']}"


def _bench_section(bench: dict | None) -> list[str]:
    if bench is None:
        return []
    env = bench["environment"]
    significance = bench["significance"]
    lines = [
        "## Microbenchmarks (pyperf, in-process)",
        "",
        f"Timer: `{bench['timer']}` (CPU time per request). Mode `{env['parameters'].get('mode', '?')}`. "
        f"Significance: {significance['rule']} "
        f"(min effect {significance['min_effect_pct']}%, z = {significance['z']}).",
        "*Paired* = both apps timed in the same short blocks of one process, so host speed changes cancel; "
        "*independent* = separate pyperf runs (wider noise).",
        "",
        _chart(bench_charts.APPS_CHART, "µs per request by variant"),
        "",
        "| variant | method | median µs | stdev % | runs | paired: added over baseline | independent: added |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in bench["apps"]:
        lines.append(
            f"| `{row['variant']}` | {row['method'].upper()} | {row['median_us']:.1f} | {row['stdev_pct']:.1f} "
            f"| {row['runs']} | {_comparison_cell(row.get('paired_vs_baseline'))} "
            f"| {ALONE if row.get('run') == 'own' else _comparison_cell(row.get('vs_baseline'))} |"
        )
    lines += ["", "| comparison | design | method | added | threshold | verdict |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {c['subject']} vs {c['reference']} | {c['design']} | {c['method'].upper()} | {c['added_pct']:+.1f}% "
        f"| {c['threshold_pct']:.1f}% | {c['verdict']} |"
        for c in [*bench["aa"], *bench["targets"]]
    ]
    lines += ["", _chart(bench_charts.PRIMITIVES_CHART, "primitives"), ""]
    lines += ["| primitive | median ns | net of the empty loop, ns |", "|---|---|---|"]
    lines += [f"| {p['name']} | {p['median_ns']:.1f} | {_fmt(p.get('net_ns'))} |" for p in bench["primitives"]]
    per_layer = bench.get("depth_per_layer_us_paired") or bench.get("depth_per_layer_us", {})
    lines += [
        "",
        _chart(bench_charts.DEPTH_CHART, "cost against middleware depth"),
        "",
        "Cost of one more context middleware layer (least-squares slope over depth 0–5): "
        + ", ".join(f"{kind} {slope:.1f} µs" for kind, slope in per_layer.items())
        + ".",
    ]
    counted = _instruction_lines(bench.get("instructions"))
    return lines + counted + attribution.bench_lines(bench) + _fix_cost_lines(bench.get("fix_cost"))


def _fix_cost_parts(fix: dict | None) -> list[str]:
    """Per method: the fix's instructions and paired CPU over the approach it fixes, each with its band."""
    if not fix:
        return []
    cpu = {item["method"]: item for item in fix.get("cpu", [])}
    parts = []
    for counted in fix.get("instructions", []):
        method = counted["method"]
        text = (
            f"{method.upper()} {counted['added']:+,.0f} instructions ({counted['added_pct']:+.2f}%; A/A and repeats"
            f" ±{counted['threshold_pct']:.2f}%: {counted['verdict']})"
        )
        timed = cpu.get(method)
        if timed is not None:
            text += (
                f", paired CPU {timed['added_us']:+.1f} µs ({timed['added_pct']:+.1f}%, threshold"
                f" {timed['threshold_pct']:.1f}%: {timed['verdict']})"
            )
        parts.append(text)
    return parts


def fix_cost_line(fix: dict | None) -> list[str]:
    """The first screen's sentence: what the fix costs over the approach it fixes, with the A/A band."""
    parts = _fix_cost_parts(fix)
    if not parts or fix is None:
        return []
    return [
        "",
        f"**What the fix costs** over `{fix['reference']}` (details: [{BENCH_MD.as_posix()}]({BENCH_MD.as_posix()})):",
        *(f"- {p}" for p in parts),
    ]


def _fix_cost_lines(fix: dict | None) -> list[str]:
    """BENCH.md: the fix against the approach it fixes, in instructions and paired CPU, with what one layer costs."""
    parts = _fix_cost_parts(fix)
    if not parts or fix is None:
        return []
    layer = fix.get("one_layer_instructions")
    within = all(item["verdict"] == "not resolved" for item in fix["instructions"])
    lines = [
        "",
        "### The fix's cost",
        "",
        f"`{fix['subject']}` against `{fix['reference']}` (the approach it fixes), in-process: the counts from their "
        "own callgrind processes, CPU time paired in the same blocks of the full run.",
        "",
        *[f"- {part}" for part in parts],
        "",
        "Target (issue: the fix as cheap as the approach that leaks): instructions within the A/A band, "
        + ("met." if within else "missed."),
    ]
    if layer is not None:
        lines[-1] += (
            f" For scale: one more pure ASGI context layer (it sets and resets one ContextVar: the depth slope above)"
            f" costs {layer:,.0f} instructions per request, and any fix placed outermost is one more layer."
        )
    wide = [c for c in fix.get("cpu", []) if c["verdict"] == "not significant"]
    if wide:
        lines[-1] += (
            " A paired CPU difference called not significant means only that it is inside this run's threshold ("
            + ", ".join(f"{c['method'].upper()} {c['threshold_pct']:.1f}%" for c in wide)
            + "), which is wider than the instruction difference: CPU time here neither confirms nor rules it out."
        )
    return lines


def _instruction_lines(counted: dict | None) -> list[str]:
    """Instructions per request (callgrind) beside CPU time: the figure the host cannot move, and what it leaves out."""
    if not counted:
        return []
    aa = ", ".join(f"{item['method'].upper()} {item['added_pct']:+.3f}%" for item in counted["aa"])
    lines = [
        "",
        "### Instructions per request (callgrind)",
        "",
        f"{counted['counter']} (`make bench MODE=instructions`). A/A (baseline's second instance): {aa}; "
        f"repeated values of one app lie within {counted['repeatability_max_spread_pct']:.3f}%. "
        f"Counts leave out {counted['leaves_out']}.",
        "",
        _chart(bench_charts.INSTRUCTIONS_CHART, "instructions per request by variant"),
        "",
        "| variant | method | instructions | added over baseline | CPU µs (median) | CPU added (paired) |",
        "|---|---|---|---|---|---|",
    ]
    for row in sorted(counted["apps"], key=lambda r: (r["method"], r["instructions"])):
        versus = row.get("vs_baseline")
        added = f"{versus['added']:+,.0f} ({versus['added_pct']:+.2f}%)" if versus else "(reference)"
        added += " †" if row.get("run") == "own" else ""
        cpu_added = row.get("cpu_paired_added_pct")
        lines.append(
            f"| `{row['variant']}` | {row['method'].upper()} | {row['instructions']:,.0f} | {added} "
            f"| {_fmt(row.get('cpu_median_us'))} | {'-' if cpu_added is None else f'{cpu_added:+.1f}%'} |"
        )
    own = sorted({row["variant"] for row in counted["apps"] if row.get("run") == "own"})
    if own:
        lines += ["", f"† {', '.join(f'`{name}`' for name in own)}: counted in a run of its own (`ctxbench variant`), "
                  "against the baseline counted in that run (counts move a little between runs)."]  # fmt: skip
    lines += [""] + [
        f"- {item['subject']} vs {item['reference']} {item['method'].upper()}: {item['added']:+,.0f} instructions "
        f"({item['added_pct']:+.3f}%, resolved beyond {item['threshold_pct']:.3f}%): {item['verdict']}"
        for item in counted["targets"]
    ]
    per_layer = ", ".join(f"{kind} {slope:,.0f}" for kind, slope in counted["depth_per_layer"].items())
    return [*lines, "", f"Instructions per middleware layer (slope over depth 0–5): {per_layer}."]


CELLS_MD = resultfiles.LOAD_DIR / "CELLS.md"


def _cell_bound(cell: dict) -> str:
    failing = bool(cell["leak"] or cell["lost"] or cell["other"])
    short = not failing and cell["requests"] < bounds.CLEAN_CELL_TARGET
    return bounds.bound_text(cell["requests"], failing) + (" *" if short else "")


def cells_markdown(load: dict) -> str:
    """Every leak-hunt cell (variant × scenario × server configuration), generated, linked from the report."""
    lines = [
        "# Leak hunt: every cell",
        "",
        "Generated by `make report` from `results/load/summary.json` (the per-run JSON files under `results/load/`).",
        "Counts are failing checkpoint.field values, warm-up included; `requests` is every validated response.",
        "",
        f"`bound` is the 95% upper bound on the share of requests that could fail unseen in a cell with no failure "
        f"(0 in n: 1 − 0.05^(1/n)); `*` marks a clean cell under {bounds.CLEAN_CELL_TARGET} validated requests.",
        "",
        "| variant | scenario | server | requests | leak | lost | other | bound |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = {label: index for index, label in enumerate(serverconfig.BY_LABEL)}
    for cell in sorted(
        load.get("leak_grid", []), key=lambda c: (c["variant"], order.get(c["server"], 99), c["scenario"])
    ):
        lines.append(
            f"| `{cell['variant']}` | {cell['scenario']} | {cell['server']} | {cell['requests']} "
            f"| {cell['leak']} | {cell['lost']} | {cell['other']} | {_cell_bound(cell)} |"
        )
    return "\n".join(lines) + "\n"


def _server_instruction_lines(counts: dict | None) -> list[str]:
    """The first figure of what a server costs: instructions per request of the whole server process (callgrind)."""
    if not counts or not counts.get("rows"):
        return []
    default = serverconfig.DEFAULT.label
    reference = registry.reference()
    base = {(r["server"], r["method"]): r["instructions"] for r in counts["rows"] if r["app"] == reference}
    lines = [
        "",
        "### What a server costs: instructions per request",
        "",
        f"The whole server process run under callgrind ({counts['counter']}) while one keep-alive connection sends "
        f"the same fixed sequence of GETs and POSTs ({counts['long'] - counts['short']} requests per block, "
        f"{counts['blocks']} blocks, after {counts['warmup']} warm-up requests per method): figures the host's speed "
        f"cannot move. The A/A row is `{reference}` in a second server process. What the counts leave out: "
        f"{counts['leaves_out']}; CPU time (below) is the second figure and sees them. Spread: max - min over blocks.",
        "",
        f"| server | app | method | instructions/request | spread | vs `{reference}`, same server "
        f"| vs `{reference}` on {default} |",
        "|---|---|---|---|---|---|---|",
    ]
    servers = list(dict.fromkeys(row["server"] for row in counts["rows"]))
    twin = server_instructions.AA
    for row in sorted(
        counts["rows"],
        key=lambda r: (servers.index(r["server"]), r["method"], r["app"] != reference, r["app"] != twin, r["app"]),
    ):
        versus = row.get("vs_baseline_pct")
        ratio = row["instructions"] / base[(default, row["method"])] if (default, row["method"]) in base else None
        lines.append(
            f"| {row['server']} | `{row['app']}` | {row['method']} | {row['instructions']:,.0f} "
            f"| {row['spread_pct']:.2f}% | {'-' if versus is None else f'{versus:+.2f}%'} | {_fmt(ratio, '.2f')} |"
        )
    return lines


def _server_cost_lines(load: dict) -> list[str]:
    cost = load.get("server_cost")
    if not cost:
        return []
    aa = cost["aa_ratio"]
    lines = [
        "",
        "### What a server costs",
        "",
        f"Plain GETs, every server kind side by side in one window on the server core ({cost['rounds']} rounds, "
        f"{cost['users_per_slot']} users per server), so host speed changes cancel. Server CPU per request; "
        f"ratios to `baseline` on the same server and to `baseline` on {cost['reference_server']} (what switching "
        f"costs). A/A ratio {_fmt(aa['median'], '.3f')} [{_fmt(aa['min'], '.3f')}–{_fmt(aa['max'], '.3f')}] is the "
        "noise floor.",
        "",
        "| server | version | variant | server CPU µs/request | vs baseline, same server [min–max] "
        f"| vs baseline on {cost['reference_server']} | req/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in cost["rows"]:
        lines.append(
            f"| {row['server']} | {row['version'] or '?'} | `{row['variant']}` "
            f"| {_fmt(row['server_us_per_request_median'], '.0f')} "
            f"| {_fmt(row['ratio_vs_baseline_median'], '.3f')} [{_fmt(row['ratio_min'], '.3f')}–"
            f"{_fmt(row['ratio_max'], '.3f')}] | {_fmt(row['ratio_vs_default_baseline_median'], '.2f')} "
            f"| {_fmt(row['rps_median'], '.0f')} |"
        )
    if cost["generator_bound_rounds"]:
        lines += ["", f"Generator-bound rounds: {cost['generator_bound_rounds']} of {cost['rounds']}."]
    return lines


def _curves_lines(curves: dict | None) -> list[str]:
    """Throughput and latency against concurrency, interleaved rounds: comparable between variants."""
    if not curves:
        return []
    lines = [
        "",
        f"### Throughput and latency against concurrency ({curves['scenario']} on {curves['server']})",
        "",
        "Closed-loop GETs at each user count, the variants interleaved within every level and round, so the host's "
        "speed changes fall on all of them alike. Median over rounds [min–max]; `generator-bound` marks points where "
        "the load generator saturated its core (the point measured the client as much as the server).",
        "",
        _chart(load_charts.THROUGHPUT_CHART, "RPS and latency against users"),
        "",
        "| variant | users | runs | req/s [min–max] | p50 ms [min–max] | p99 ms [min–max] | generator-bound runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in curves["rows"]:
        figures = [
            f"{_fmt(row[f'{name}_median'], spec)} [{_fmt(row[f'{name}_min'], spec)}–{_fmt(row[f'{name}_max'], spec)}]"
            for name, spec in (("rps", ".0f"), ("p50_ms", ".2f"), ("p99_ms", ".2f"))
        ]
        lines.append(
            f"| `{row['variant']}` | {row['users']} | {row['runs']} | "
            + " | ".join(figures)
            + f" | {row['generator_bound_runs']} |"
        )
    return lines


def _load_section(
    load: dict | None, server_counts: dict | None = None, bench: dict | None = None, client_count: dict | None = None
) -> list[str]:
    if load is None:
        return []
    clean = load.get("clean_cells") or {}
    lines = [
        "## Load runs (locust against real servers on 127.0.0.1)",
        "",
        _chart(load_charts.LEAK_CHART, "leak heatmap"),
        "",
        f"{clean.get('cells', 0)} cells (variant × scenario × server configuration), "
        f"{clean.get('total_requests', 0)} validated requests in all. {clean.get('clean', 0)} cells had no failure "
        f"of any kind, each backed by at least {clean.get('min_requests')} requests (median "
        f"{_fmt(clean.get('median_requests'), '.0f')}); the least-backed clean cell bounds the share of requests "
        f"that could fail unseen at {_pct(clean.get('worst_bound'))} (95%, 0 failures in n), and "
        f"{clean.get('below_target', '?')} clean cells are under the target of {bounds.CLEAN_CELL_TARGET} validated "
        f"requests (≤ {bounds.clean_bound(bounds.CLEAN_CELL_TARGET) * 100:.2f}%). Every cell, with its counts: "
        f"[{CELLS_MD.name}]({CELLS_MD.relative_to(resultfiles.RESULTS)}).",
    ]
    lines += _hunt_time_lines(load.get("hunt_time"))
    lines += _server_instruction_lines(server_counts)
    loops = loop_parser.lines(load)
    lines += ["", *loops] if loops else []
    lines += _server_cost_lines(load)
    cost = load.get("cost")
    if cost:
        aa = cost["aa_ratio"]
        lines += [
            "",
            f"Server CPU per request, side by side in one window ({cost['rounds']} rounds, scenario "
            f"{cost['scenario']}, server {cost['server']}); A/A ratio {aa['median']:.3f} "
            f"[{aa['min']:.3f}–{aa['max']:.3f}] is the noise floor:",
            "",
            _chart(load_charts.COST_CHART, "server CPU µs per request"),
            "",
            "| variant | server CPU µs/request | ratio vs baseline [min–max] |",
            "|---|---|---|",
        ]
        for name, fig in cost["variants"].items():
            lines.append(
                f"| `{name}` | {_fmt(fig['server_us_per_request_median'], '.0f')} "
                f"| {_fmt(fig.get('ratio_vs_baseline_median'), '.3f')} "
                f"[{_fmt(fig.get('ratio_min'), '.3f')}–{_fmt(fig.get('ratio_max'), '.3f')}] |"
            )
    latency = load.get("latency") or {}
    if latency:
        lines += [
            "",
            "Latency from fixed-rate runs well below capacity (not from saturated runs):",
            "",
            "| variant | rate/s | p50 ms | p90 ms | p99 ms | max ms |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| `{name}` | {_fmt(f['rate_per_s'], '.0f')} | {_fmt(f['p50_ms'], '.2f')} | {_fmt(f['p90_ms'], '.2f')} "
            f"| {_fmt(f['p99_ms'], '.2f')} | {_fmt(f['max_ms'], '.2f')} |"
            for name, f in latency.items()
        ]
    lines += _curves_lines(load.get("curves"))
    lines += ["", *judging.judging_lines(load, bench, client_count)]
    bound = load.get("generator_bound") or []
    lines += [
        "",
        f"Generator-bound runs (the load generator, not the server, was the bottleneck): {len(bound)}"
        + (f": {', '.join(bound)}." if bound else "."),
    ]
    return lines


def _matrix_section(matrix: dict | None) -> list[str]:
    if matrix is None:
        return []
    return [
        "## Propagation matrix",
        "",
        f"![propagation matrix]({MATRIX_PNG.relative_to(resultfiles.RESULTS)})",
        "",
        f"The full table, with the line of code behind every cell: [{MATRIX_MD.name}]"
        f"({MATRIX_MD.relative_to(resultfiles.RESULTS)}).",
    ]


def _opening_chart(sources: dict[str, dict | None]) -> list[str]:
    if not decision.server_kinds(sources["load"]):
        return []
    return [_chart(decision_chart.DECISION_CHART, "approach by server kind, coloured by verdict"), ""]


# The detail pages, each beside the data it comes from (paths relative to results/), with its title.
DECISION_MD = Path("DECISION.md")
BENCH_MD = Path("bench") / "BENCH.md"
LOAD_MD = Path("load") / "LOAD.md"
OBSERVABILITY_MD = Path("load") / "OBSERVABILITY.md"
PROXY_MD = Path("load") / "PROXY.md"
SOAK_MD = Path("soak") / "SOAK.md"
VERIFY_MD = Path("verify") / "VERIFY.md"
ENVIRONMENT_MD = Path("ENVIRONMENT.md")
VERSIONS_MD = Path("versions") / "VERSIONS.md"  # written by scripts.versions.report with its chart
TITLES = {
    DECISION_MD: "Recommendation, per server, the decision table and what each mechanism cannot do",
    PROXY_MD: "Behind a reverse proxy: another client's data, per approach, server and proxy; HTTP/2",
    OBSERVABILITY_MD: "What your observability tools record",
    BENCH_MD: "Microbenchmarks: CPU time and instructions per request, in-process",
    LOAD_MD: "Load runs: the leak hunt, what a server costs, throughput and latency",
    VERSIONS_MD: "Which versions leak: the version matrix",
    SOAK_MD: "Soak: a million validated requests and server memory",
    VERIFY_MD: "In-process verdicts and the propagation matrix",
    ENVIRONMENT_MD: "Where these figures come from",
}


def detail_pages(
    results_dir: Path, sources: dict[str, dict | None], table: list[decision.Row]
) -> dict[Path, list[str]]:
    """Every detail page's sections (empty where its results are missing), links written relative to results/."""
    results = resultfiles.RESULTS
    return {
        DECISION_MD: [
            *decision.recommendation_lines(table),
            "",
            *_blank_after(attribution.explicit_lines(sources["bench"])),
            *decision.per_server_lines(table, sources["load"]),
            "",
            *decision.table_lines(table),
            "",
            *decision.limits_lines(table),
        ],
        PROXY_MD: proxy.section(sources["load"]),
        OBSERVABILITY_MD: observability.section(sources),
        BENCH_MD: _bench_section(sources["bench"]),
        LOAD_MD: _load_section(
            sources["load"],
            sources["server_instructions"],
            sources["bench"],
            judging.client_count(results_dir / judging.COUNT_FILE.relative_to(results)),
        ),
        SOAK_MD: soak_section(
            results_dir / resultfiles.SOAK_DIR.relative_to(results),
            results_dir / resultfiles.SOAK_FOLLOWUP_DIR.relative_to(results),
        ),
        VERIFY_MD: [*_verify_section(sources["verify"]), "", *_matrix_section(sources["matrix"])],
        ENVIRONMENT_MD: _environment_section(sources),
    }


def _page_text(page: Path, sections: list[str]) -> str:
    lines = [f"# {TITLES[page]}", "", "Part of the [ctxbench report](REPORT.md); generated by `make report`.", ""]
    return "\n".join([*lines, *sections]).rstrip() + "\n"


def _blank_after(lines: list[str]) -> list[str]:
    return [*lines, ""] if lines else []


GRID_WORD = {  # one word per cell of the first screen's grid
    decision.CORRECT: "correct",
    decision.DROPS_STARTUP: "drops",
    decision.CORRECT_WITH: "setting",
    decision.STALE_AT_ENTRY: "stale",
    decision.LEAKS: "leaks",
    decision.LOSES: "loses",
    decision.NOT_RUN: "-",
}
GRID_LEGEND = [  # one line (at most 300 characters): the first screen holds every variant's row
    "Default settings: **correct** (no leak, no loss, startup context kept), **drops** (correct, startup context "
    "gone), **setting** (correct only with the fresh-Context setting, which drops it too), **stale** (another "
    "request's context at entry), **leaks**, **loses** (context lost), **-** (not run).",
]


def _grid_lines(table: list[decision.Row], load: dict | None, bench: dict | None = None) -> list[str]:
    kinds = decision.server_kinds(load)
    parts = attribution.rows_by_variant(bench)
    if not kinds:
        return []
    verdicts = decision.per_server(load)
    header = ["approach", "what it is", "carried by", *kinds, "instructions/GET vs baseline"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        cells = []
        for kind in kinds:
            verdict = verdicts.get((row.variant.name, kind))
            cells.append(GRID_WORD[verdict.verdict] if verdict else "-")
        counted = (row.instructions.get(decision.RANKING_METHOD) or {}).get("vs_baseline")
        cost = f"{counted['added_pct']:+.2f}%" if counted else ("the floor" if row.instructions else "-")
        largest = attribution.largest_phrase(parts.get(row.variant.name))
        cost += f" ({largest})" if counted and largest else ""
        lines.append(
            f"| `{row.variant.name}` | {row.variant.category} | {row.variant.mechanism} | "
            + " | ".join(cells)
            + f" | {cost} |"
        )
    band = next(
        (r.instructions[decision.RANKING_METHOD]["vs_baseline"]["threshold_pct"] for r in table if _counted(r)), None
    )
    costs = (
        [
            f"Cost: instructions per GET over baseline (callgrind, in-process); within the A/A band (±{band:.2f}%): "
            "tie. Largest: the component that adds the most of it (where the instructions go: "
            f"[{BENCH_MD.as_posix()}]({BENCH_MD.as_posix()}))."
        ]
        if band is not None
        else []
    )
    return [*lines, "", *GRID_LEGEND, *costs]


def _counted(row: decision.Row) -> bool:
    return bool((row.instructions.get(decision.RANKING_METHOD) or {}).get("vs_baseline"))


def render(results_dir: Path = resultfiles.RESULTS) -> str:
    """REPORT.md: the answer, the approach × server grid, one cost per approach and the links, in one screen."""
    sources = load_sources(results_dir)
    table = decision.decide(sources)
    pages = detail_pages(results_dir, sources, table)
    has_versions = (results_dir / VERSIONS_MD).exists()
    links = [
        f"- [{TITLES[page]}]({page.as_posix()})"
        for page in TITLES
        if (pages.get(page) if page in pages else has_versions)
    ]
    missing = [f"- {name}: missing: run `{REPRODUCE[name]}`" for name, data in sources.items() if data is None]
    lines = [
        "# ctxbench report",
        "",
        "How to share request-scoped data in a FastAPI app, measured. Generated by `make report` from the raw "
        "results under `results/`; every figure is read from them.",
        "",
        "## The answer",
        "",
        decision.answer(table) if any(row.outcome.where for row in table) else "No results yet: run `make bench`.",
        *soak_headline(
            results_dir / resultfiles.SOAK_DIR.relative_to(resultfiles.RESULTS),
            results_dir / resultfiles.SOAK_FOLLOWUP_DIR.relative_to(resultfiles.RESULTS),
        ),
        *fix_cost_line((sources["bench"] or {}).get("fix_cost")),
        "",
        *_blank_after(proxy.answer_lines(sources["load"])),  # behind a proxy: the figure that matters, first
        *_opening_chart(sources),
        *_grid_lines(table, sources["load"], sources["bench"]),
        "",
        "## Details",
        "",
        *links,
        *missing,
    ]
    return "\n".join(lines).rstrip() + "\n"


def write_report(results_dir: Path) -> list[Path]:
    """REPORT.md and every detail page it links, under `results_dir`."""
    sources = load_sources(results_dir)
    pages = detail_pages(results_dir, sources, decision.decide(sources))
    written = [
        resultfiles.write_page(results_dir, page, _page_text(page, sections))
        for page, sections in pages.items()
        if sections
    ]
    report = resultfiles.REPORT_PATH.relative_to(resultfiles.RESULTS)
    return [*written, resultfiles.write_page(results_dir, report, render(results_dir))]


def rebuild_derived() -> list[Path]:
    """Every summary, table and chart under results/, recomputed from the raw files that are there."""
    written: list[Path] = []
    if any(resultfiles.BENCH_DIR.glob("app_*.json")):
        summary = benchstats.summarize(resultfiles.BENCH_DIR)
        written += [
            resultfiles.BENCH_DIR / benchstats.SUMMARY_NAME,
            *bench_charts.draw_all(summary, resultfiles.CHARTS_DIR),
        ]
    if any(path.name != loadstats.SUMMARY_NAME for path in resultfiles.LOAD_DIR.glob("*.json")):
        summary = loadstats.summarize(resultfiles.LOAD_DIR)
        written += [resultfiles.LOAD_DIR / loadstats.SUMMARY_NAME, *load_charts.draw(summary)]
        written.append(resultfiles.write_text(CELLS_MD, cells_markdown(summary)))
    if MATRIX_JSON.exists():
        written += matrix.render(resultfiles.read_json(MATRIX_JSON))
    written += render_versions(resultfiles.RESULTS)
    sources = load_sources(resultfiles.RESULTS)
    chart = decision_chart.decision_chart(decision.decide(sources), sources["load"])
    return [*written, *([chart] if chart else [])]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results-dir", type=existing_dir, default=resultfiles.RESULTS, help="where results/ lives (read, must exist)"
    )
    parser.add_argument("--no-rebuild", action="store_true", help="only REPORT.md, from the summaries as they are")


def run(args: argparse.Namespace) -> int:
    if not args.no_rebuild and args.results_dir.resolve() == resultfiles.RESULTS:
        for derived in rebuild_derived():
            print(f"rebuilt {derived}")
    for path in write_report(args.results_dir):
        print(f"wrote {path}")
    return 0
