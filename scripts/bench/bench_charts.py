"""Draw the microbenchmark charts (PNG, matplotlib Agg) from summary.json alone, rebuilt from the pyperf JSON."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from scripts.bench.stats import BASELINE, METHODS, NOT_SIGNIFICANT
from scripts.common import chart_style

APPS_CHART, PRIMITIVES_CHART, DEPTH_CHART = "bench_apps.png", "bench_primitives.png", "bench_depth.png"
INSTRUCTIONS_CHART = "bench_instructions.png"
ATTRIBUTION_CHART = "bench_attribution.png"
ATTRIBUTION_METHOD = "get"  # the method the report ranks by
VERDICT_COLORS = {"slower": "tab:red", "faster": "tab:green", NOT_SIGNIFICANT: "tab:gray", None: "tab:blue"}
ROW_IN = 0.32  # height of one variant's bar: 12 pt labels need about this much


def draw_apps(summary: dict, path: Path) -> Path:
    """Per variant: grey bar = baseline's median, coloured = the cost added over it (paired blocks where measured,
    else independent runs, marked *; colour = that comparison's verdict); dot and whisker = the variant's own median
    and IQR over its independent pyperf runs. One panel per method, stacked: the column is narrow, not short."""
    per_panel = max(sum(row["method"] == method for row in summary["apps"]) for method in METHODS)
    fig, axes = chart_style.figure(len(METHODS) * (ROW_IN * per_panel + 0.9) + 1.3, rows=len(METHODS))
    for axis, method in zip(axes, METHODS, strict=True):
        rows = [row for row in summary["apps"] if row["method"] == method]
        reference = next((row["median_us"] for row in rows if row["variant"] == BASELINE), None)
        rows.sort(key=lambda row: added_cost(row) if reference is not None else row["median_us"])
        names = [row["variant"] for row in rows]
        for index, row in enumerate(rows):
            versus = row.get("paired_vs_baseline") or row.get("vs_baseline")
            if not versus or reference is None:
                axis.barh(index, reference or row["median_us"], color="lightgray")
                continue
            added, color = versus["added_us"], VERDICT_COLORS[versus["verdict"]]
            axis.barh(index, min(reference, reference + added), color="lightgray")
            if added >= 0:
                axis.barh(index, added, left=reference, color=color)
            else:
                axis.barh(index, -added, left=reference + added, fill=False, edgecolor=color)
            note = f"{added:+.0f} µs ({versus['added_pct']:+.1f}%)" + ("" if versus["design"] == "paired" else " *")
            axis.text(max(row["p75_us"], reference + added) * 1.02, index, note, va="center")
        medians = [row["median_us"] for row in rows]
        low = [row["median_us"] - row["p25_us"] for row in rows]
        high = [row["p75_us"] - row["median_us"] for row in rows]
        own = axis.errorbar(
            medians, range(len(rows)), xerr=[low, high], fmt="o", color="black", markersize=4, capsize=3
        )
        axis.set_yticks(range(len(rows)), names)
        axis.set_ylim(-0.5, len(rows) - 0.5)
        axis.set_title(f"{method.upper()}: CPU µs per request")
        axis.set_xlim(0, max((row["p75_us"] for row in rows), default=1) * 1.8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("lightgray", *VERDICT_COLORS.values())][:4]
    labels = ["baseline's median", "added: slower", "added: faster", "added: not significant"]
    fig.legend([*handles, own], [*labels, "own median, IQR"], loc="outside lower center", ncols=3, frameon=False)
    fig.suptitle("Cost per request: baseline + the cost a variant adds (* = independent runs, not paired)")
    return chart_style.save(fig, path)


def added_cost(row: dict) -> float:
    versus = row.get("paired_vs_baseline") or row.get("vs_baseline")
    return versus["added_us"] if versus else 0.0


def draw_primitives(summary: dict, path: Path) -> Path:
    rows = sorted(summary["primitives"], key=lambda row: row["median_ns"])
    fig, axis = chart_style.figure(ROW_IN * len(rows) + 1.6)
    names = [row["name"] for row in rows]
    axis.barh(
        names,
        [row["median_ns"] for row in rows],
        xerr=[[r["median_ns"] - r["p25_ns"] for r in rows], [r["p75_ns"] - r["median_ns"] for r in rows]],
        color="tab:blue",
        capsize=3,
    )
    axis.set_xlabel("CPU ns per operation (median, IQR; includes empty_loop)")
    axis.set_title("Context primitives")
    return chart_style.save(fig, path)


def draw_depth(summary: dict, path: Path) -> Path:
    """Left: each depth's own median and IQR (independent runs). Right: cost added over depth 0, paired blocks."""
    fig, (left, right) = chart_style.figure(9, rows=2)  # stacked: the column is narrow, not short
    for kind, per_layer in summary["depth_per_layer_us"].items():
        rows = sorted((row for row in summary["depth"] if row["kind"] == kind), key=lambda row: row["depth"])
        label = f"{kind} ({per_layer:.1f} µs per layer)" if per_layer is not None else kind
        left.errorbar(
            [row["depth"] for row in rows],
            [row["median_us"] for row in rows],
            yerr=[[r["median_us"] - r["p25_us"] for r in rows], [r["p75_us"] - r["median_us"] for r in rows]],
            marker="o",
            capsize=3,
            label=label,
        )
        paired = [row["paired_vs_depth_0"] for row in rows if "paired_vs_depth_0" in row]
        if paired:
            slope = summary["depth_per_layer_us_paired"].get(kind)
            right.errorbar(
                [0] + [row["depth"] for row in rows if "paired_vs_depth_0" in row],
                [0.0] + [item["added_us"] for item in paired],
                yerr=[0.0] + [item["threshold_pct"] * item["reference_us"] / 100 for item in paired],
                marker="o",
                capsize=3,
                label=f"{kind} ({slope:.1f} µs per layer)" if slope is not None else kind,
            )
    left.set_title("Independent runs: median, IQR")
    left.set_ylabel("CPU µs per request")
    left.set_ylim(bottom=0)
    right.set_title("Paired blocks: added over depth 0 (whisker: threshold)")
    right.set_ylabel("CPU µs added per request")
    for axis in (left, right):
        axis.set_xlabel("stacked context middlewares")
        if axis.has_data():
            axis.legend()
    fig.suptitle("Cost against middleware depth: pure ASGI vs BaseHTTPMiddleware")
    return chart_style.save(fig, path)


def draw_instructions(summary: dict, path: Path) -> Path:
    """Per variant and method: instructions added per request over baseline (callgrind), with the paired CPU-time
    figure beside it; right: instructions against middleware depth. Title: the A/A and the repeatability."""
    counted = summary["instructions"]
    per_panel = max(sum(r["method"] == method for r in counted["apps"]) for method in METHODS)
    heights = [ROW_IN * per_panel + 1.0] * len(METHODS) + [3.5]
    fig, axes = chart_style.figure(sum(heights) + 1.0, rows=len(METHODS) + 1, height_ratios=heights)
    for axis, method in zip(axes, METHODS, strict=False):
        rows = sorted((r for r in counted["apps"] if r["method"] == method), key=lambda r: r["instructions"])
        base = next((r["instructions"] for r in rows if r["variant"] == BASELINE), None)
        for index, row in enumerate(rows):
            versus = row.get("vs_baseline")
            added = versus["added"] if versus else 0.0
            color = {"more instructions": "tab:red", "fewer instructions": "tab:green"}.get(
                versus["verdict"] if versus else None, "tab:gray"
            )
            axis.barh(index, added / 1e3, color=color)
            cpu = row.get("cpu_paired_added_pct")
            note = (
                f"{added / 1e3:+.1f} k ({versus['added_pct']:+.1f}%)"
                if versus
                else f"{row['instructions'] / 1e6:.3f} M"
            )
            note += f", CPU {cpu:+.1f}%" if cpu is not None else ""
            axis.text(max(added, 0) / 1e3, index, " " + note, va="center")
        axis.set_yticks(range(len(rows)), [row["variant"] for row in rows])
        axis.set_ylim(-0.5, len(rows) - 0.5)
        axis.set_xlabel("thousand instructions added per request (CPU: paired CPU time added)")
        reference = f"baseline {base / 1e6:.3f} M" if base else "no baseline"
        axis.set_title(f"{method.upper()}: added over {reference} instructions per request")
        axis.set_xlim(right=max((r.get("vs_baseline", {}).get("added", 0) for r in rows), default=1) / 1e3 * 2.0 or 1)
    right = axes[-1]
    for kind, per_layer in counted["depth_per_layer"].items():
        rows = sorted((r for r in counted["depth"] if r["kind"] == kind), key=lambda r: r["depth"])
        label = f"{kind} ({per_layer / 1e3:.1f} k per layer)" if per_layer is not None else kind
        right.plot([r["depth"] for r in rows], [r["instructions"] / 1e6 for r in rows], marker="o", label=label)
    right.set(xlabel="stacked context middlewares", ylabel="million instructions per request (GET)")
    right.set_ylim(bottom=0)
    if right.has_data():
        right.legend()
    right.set_title("Against middleware depth")
    aa = ", ".join(f"{item['method'].upper()} {item['added_pct']:+.3f}%" for item in counted["aa"])
    spread = counted["repeatability_max_spread_pct"]
    fig.suptitle(
        f"Instructions per request (callgrind): A/A {aa or '-'}; repeat spread at most "
        f"{'-' if spread is None else f'{spread:.3f}%'}\nRed: more than baseline, beyond A/A and spread"
    )
    return chart_style.save(fig, path)


def attribution_rows(summary: dict, method: str = ATTRIBUTION_METHOD) -> list[dict]:
    """The attributed variants of one method, cheapest first by their counted difference."""
    found = ((summary.get("instructions") or {}).get("attribution") or {}).get("rows", [])
    rows = [row for row in found if row["method"] == method and "components" in row]
    return sorted(rows, key=lambda row: row["measured"] if row["measured"] is not None else row["attributed"])


def draw_attribution(summary: dict, path: Path) -> Path:
    """Per variant: its added instructions per GET stacked by component (a component it saves goes left of zero),
    the counted difference as a black tick; the gap between the stack's ends and the tick is the residual."""
    section = summary["instructions"]["attribution"]
    rows = attribution_rows(summary)
    components = section["components"]
    colors = {name: plt.get_cmap("tab10")(index % 10) for index, name in enumerate(components)}
    fig, axis = chart_style.figure(ROW_IN * 1.4 * len(rows) + 3.2)
    ends: list[float] = []
    notes: list[str] = []
    lows: list[float] = []
    for index, row in enumerate(rows):
        right = left = 0.0
        for name in components:
            added = row["components"][name] / 1e3
            if added >= 0:
                axis.barh(index, added, left=right, color=colors[name])
                right += added
            else:
                axis.barh(index, added, left=left, color=colors[name])
                left += added
        lows.append(min(left, (row["measured"] or 0) / 1e3))
        if row["measured"] is not None:
            axis.plot([row["measured"] / 1e3] * 2, [index - 0.4, index + 0.4], color="black", linewidth=2)
        ends.append(max(right, (row["measured"] or 0) / 1e3))
        notes.append(f" {(row['measured'] if row['measured'] is not None else row['attributed']) / 1e3:+,.0f} k")
    # One variant far beyond the rest (an SDK's transaction per request) would flatten every other bar: the axis
    # stops past the second widest, a longer bar is cut there and its label says its figure.
    ordered = sorted(ends)
    limit = (ordered[-2] * 1.4 if len(ordered) > 1 and ordered[-1] > 2 * ordered[-2] else ordered[-1] * 1.15) or 1
    for index, (end, note) in enumerate(zip(ends, notes, strict=True)):
        if end > limit:  # inside the cut bar's end, so the label stays in the column
            axis.text(limit, index, note + " (cut) ", va="center", ha="right", color="white")
        else:
            axis.text(end, index, note, va="center")
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_yticks(range(len(rows)), [row["variant"] for row in rows])
    axis.set_ylim(-0.5, len(rows) - 0.5)
    axis.set_xlabel("thousand instructions added per GET over baseline (callgrind), by component")
    axis.set_xlim(min(lows, default=0.0) * 1.1, limit)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[name]) for name in components]
    fig.legend(handles, components, loc="outside lower center", ncols=2, frameon=False)
    residual = section.get("max_abs_residual_pct_of_request")
    fig.suptitle(
        "Where the added instructions go (GET); black tick: the counted difference\n"
        + ("" if residual is None else f"largest residual (any variant, GET or POST): {residual:.2f}% of its request")
    )
    return chart_style.save(fig, path)


def draw_all(summary: dict, charts_dir: Path) -> list[Path]:
    """Every chart from one summary (as benchstats.summarize returns it)."""
    drawn = []
    if summary["apps"]:
        drawn.append(draw_apps(summary, charts_dir / APPS_CHART))
    if summary["primitives"]:
        drawn.append(draw_primitives(summary, charts_dir / PRIMITIVES_CHART))
    if summary["depth"]:
        drawn.append(draw_depth(summary, charts_dir / DEPTH_CHART))
    if summary.get("instructions"):
        drawn.append(draw_instructions(summary, charts_dir / INSTRUCTIONS_CHART))
    if attribution_rows(summary):
        drawn.append(draw_attribution(summary, charts_dir / ATTRIBUTION_CHART))
    return drawn
