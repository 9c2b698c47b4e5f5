"""Charts of the load results, drawn from summary.json alone (matplotlib, Agg backend, PNG under results/charts/)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt

from apps.harness import registry
from scripts.common import chart_style
from scripts.common.results import CHARTS_DIR
from scripts.load.servers import BY_LABEL

THROUGHPUT_CHART, COST_CHART, LEAK_CHART = "load_throughput.png", "load_cost.png", "load_leaks.png"
THROUGHPUT_SCENARIO = "get"
ROW_IN = 0.32  # height of one variant's row: 12 pt labels need about this much
SERVERS_PER_PANEL = 7  # leak chart: columns wide enough for the scenario letters and a wrapped server label


def _save(figure: plt.Figure, name: str) -> Path:
    return chart_style.save(figure, CHARTS_DIR / name)


def throughput_chart(summary: dict) -> Path | None:
    """Throughput and p50/p99 against users for baseline and the approaches (`make sweep MODE=curves`).

    Drawn from `curves` (interleaved rounds: the host's speed changes fall on every variant alike, so the curves can be
    compared). Point = median over rounds, bar = min-max; a hollow red ring marks a point where a run's generator was
    saturated (it measured the client as much as the server).
    """
    curves = summary.get("curves")
    if not curves:
        return None
    figure, (left, right) = chart_style.figure(9.5, rows=2, sharex=True)  # stacked: the column is narrow
    order = [v.name for v in registry.VARIANTS if any(row["variant"] == v.name for row in curves["rows"])]
    for index, variant in enumerate(order):
        rows = sorted((r for r in curves["rows"] if r["variant"] == variant), key=lambda r: r["users"])
        users = [r["users"] for r in rows]
        color = f"C{index}"
        _curve(left, users, rows, "rps", color, f"{variant}", "-")
        _curve(right, users, rows, "p50_ms", color, f"{variant} p50", "--")
        _curve(right, users, rows, "p99_ms", color, f"{variant} p99", "-")
        for axis, names in ((left, ("rps",)), (right, ("p50_ms", "p99_ms"))):
            bound = [r for r in rows if r["generator_bound_runs"]]
            for name in names:
                axis.scatter(
                    [r["users"] for r in bound],
                    [r[f"{name}_median"] for r in bound],
                    s=120,
                    facecolors="none",
                    edgecolors="red",
                    zorder=3,
                )
    rounds = max((row["runs"] for row in curves["rows"]), default=0)
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xticks(curves["users"], [str(u) for u in curves["users"]])
    right.set_xlabel("concurrent users (closed loop, one keep-alive connection each)")
    left.set(ylabel="requests/s", title=f"throughput, {curves['scenario']}")
    left.set_ylim(bottom=0)
    right.set(ylabel="latency ms", title="latency (exact percentiles): p50 dashed, p99 solid")
    right.set_yscale("log")
    # One key for both panels: a colour per variant (the latency panel's two lines share it) and the ring.
    handles, labels = left.get_legend_handles_labels()
    ring = left.scatter([], [], s=120, facecolors="none", edgecolors="red")
    figure.legend(
        [*handles, ring], [*labels, "generator-bound in some round"], loc="outside lower center", ncols=3, frameon=False
    )
    figure.suptitle(
        chart_style.wrap(
            f"Against concurrency on {curves['server']}: point = median over {rounds} interleaved rounds "
            "(variants rotated within each level), bar = min-max",
            80,
        )
    )
    return _save(figure, THROUGHPUT_CHART)


def _curve(axis: plt.Axes, users: list[int], rows: list[dict], name: str, color: str, label: str, style: str) -> None:
    middle = [r[f"{name}_median"] for r in rows]
    low = [m - r[f"{name}_min"] for m, r in zip(middle, rows, strict=True)]
    high = [r[f"{name}_max"] - m for m, r in zip(middle, rows, strict=True)]
    axis.errorbar(users, middle, yerr=[low, high], color=color, linestyle=style, marker="o", capsize=3, label=label)


def cost_chart(summary: dict) -> Path | None:
    cost = summary["cost"]
    if not cost:
        return None
    variants = [v.name for v in registry.VARIANTS if v.name in cost["variants"]]
    medians = [cost["variants"][v]["server_us_per_request_median"] for v in variants]
    low = [m - cost["variants"][v]["min"] for v, m in zip(variants, medians, strict=True)]
    high = [cost["variants"][v]["max"] - m for v, m in zip(variants, medians, strict=True)]
    # Horizontal bars: variant names read level instead of as rotated ticks.
    figure, axis = chart_style.figure(ROW_IN * len(variants) + 2.2)
    axis.barh(variants, medians, xerr=[low, high], capsize=4, color="tab:blue")
    for index, variant in enumerate(variants):
        ratio = cost["variants"][variant]["ratio_vs_baseline_median"]
        axis.annotate(f" ×{ratio:.2f}", (medians[index] + high[index], index), va="center")
    axis.set_ylim(len(variants) - 0.5, -0.5)
    axis.set_xlim(0, max(m + h for m, h in zip(medians, high, strict=True)) * 1.15)
    aa = cost["aa_ratio"]
    axis.set(xlabel="server CPU µs per request (median, bar: min-max; ×: ratio to baseline)")
    figure.suptitle(
        f"Server CPU side by side: {cost['rounds']} rounds, {cost['scenario']} on {cost['server']}\n"
        f"A/A ratio {aa['median']:.3f} ({aa['min']:.3f}-{aa['max']:.3f})"
    )
    return _save(figure, COST_CHART)


SCENARIO_MARKS = {"get": "g", "post": "b", "stream": "s", "pipeline": "p", "mix": "m"}  # b: large request bodies


def leak_chart(summary: dict) -> Path | None:
    """Variant × server configuration: leaked values over every scenario (colour, log scale) and which scenarios."""
    grid = summary["leak_grid"]
    if not grid:
        return None
    variants = [v.name for v in registry.VARIANTS if any(cell["variant"] == v.name for cell in grid)]
    servers = [label for label in BY_LABEL if any(cell["server"] == label for cell in grid)]
    by_cell: dict[tuple[str, str], list[dict]] = {}
    for cell in grid:
        by_cell.setdefault((cell["variant"], cell["server"]), []).append(cell)
    panels = [servers[i : i + SERVERS_PER_PANEL] for i in range(0, len(servers), SERVERS_PER_PANEL)]
    figure, axes = chart_style.figure(
        (ROW_IN * len(variants) + 1.4) * len(panels) + 1.8, rows=len(panels), squeeze=False
    )
    totals = {key: sum(c["leak"] for c in cells) for key, cells in by_cell.items()}
    top = max((math.log10(1 + x) for x in totals.values()), default=0.0) or 1.0  # one colour scale for every panel
    for axis, shown in zip(axes.flat, panels, strict=True):
        shade = [[math.log10(1 + totals.get((v, s), 0)) for s in shown] for v in variants]
        axis.imshow(shade, cmap="Reds", aspect="auto", vmin=0, vmax=top)
        for y, variant in enumerate(variants):
            for x, server in enumerate(shown):
                dark = shade[y][x] > top * 0.6  # white text on dark cells
                text = _leak_cell(by_cell.get((variant, server)))
                axis.text(x, y, text, ha="center", va="center", color="white" if dark else "black")
        # Labels wrap at their dashes: a server label stays level and within its column.
        axis.set_xticks(range(len(shown)), [label.replace("-", "-\n") for label in shown])
        axis.xaxis.tick_top()
        axis.set_yticks(range(len(variants)), variants)
        axis.tick_params(length=0)
    marks = ", ".join(f"{mark} {name}" for name, mark in SCENARIO_MARKS.items())
    figure.suptitle("Leak hunt: leaked values per variant and server configuration")
    chart_style.caption(
        figure,
        f"Colour: values leaked over every scenario (log scale). Letters: the scenarios that leaked ({marks}); "
        "L = context lost; 0 = nothing failed; - = not run.",
    )
    return _save(figure, LEAK_CHART)


def _leak_cell(cells: list[dict] | None) -> str:
    if not cells:
        return "-"
    leaked = {c["scenario"] for c in cells if c["leak"]}
    leaking = "".join(mark for name, mark in SCENARIO_MARKS.items() if name in leaked)
    lost = "L" if any(c["lost"] for c in cells) else ""
    return " ".join(part for part in (leaking, lost) if part) or "0"


def draw(summary: dict) -> list[Path]:
    return [path for path in (throughput_chart(summary), cost_chart(summary), leak_chart(summary)) if path]
