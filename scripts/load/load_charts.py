"""Charts of the load results, drawn from summary.json alone (matplotlib, Agg backend, PNG under results/charts/)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here; chosen before pyplot is imported
import matplotlib.pyplot as plt

from apps.harness import registry
from scripts.common.results import CHARTS_DIR, write_figure
from scripts.load.servers import BY_LABEL

THROUGHPUT_CHART, COST_CHART, LEAK_CHART = "load_throughput.png", "load_cost.png", "load_leaks.png"
THROUGHPUT_SCENARIO = "get"
DPI = 120


def _save(figure: plt.Figure, name: str) -> Path:
    return write_figure(figure, CHARTS_DIR / name, dpi=DPI, bbox_inches="tight")


def throughput_chart(summary: dict) -> Path | None:
    """Throughput and p50/p99 against users for baseline and the approaches (`make sweep MODE=curves`).

    Drawn from `curves` (interleaved rounds: the host's speed changes fall on every variant alike, so the curves can be
    compared). Point = median over rounds, bar = min-max; a hollow red ring marks a point where a run's generator was
    saturated (it measured the client as much as the server).
    """
    curves = summary.get("curves")
    if not curves:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
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
        axis.set_xlabel("concurrent users (closed loop, one keep-alive connection each)")
    left.set(ylabel="requests/s (median; bar: min-max over rounds)", title=f"throughput, {curves['scenario']}")
    left.set_ylim(bottom=0)
    right.set(ylabel="latency ms (exact percentiles)", title="p50 (dashed) and p99 (solid)")
    right.set_yscale("log")
    left.legend(fontsize=7)
    right.scatter([], [], s=120, facecolors="none", edgecolors="red", label="generator-bound in some round")
    right.legend(fontsize=6, ncols=2)
    figure.suptitle(
        f"Against concurrency on {curves['server']}: {rounds} interleaved rounds per point (variants rotated within "
        "each level)"
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
    figure, axis = plt.subplots(figsize=(11, 5))
    axis.bar(variants, medians, yerr=[low, high], capsize=4, color="tab:blue")
    for index, variant in enumerate(variants):
        ratio = cost["variants"][variant]["ratio_vs_baseline_median"]
        axis.annotate(f"x{ratio:.2f}", (index, medians[index]), ha="center", va="bottom", fontsize=8)
    aa = cost["aa_ratio"]
    axis.set(ylabel="server CPU µs per request (median, min-max bars)")
    axis.set_title(
        f"Side by side, {cost['rounds']} rounds, {cost['scenario']} on {cost['server']}; "
        f"A/A ratio {aa['median']:.3f} ({aa['min']:.3f}-{aa['max']:.3f})"
    )
    axis.tick_params(axis="x", rotation=35)
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
    figure, axis = plt.subplots(figsize=(max(10, 0.9 * len(servers) + 3), 0.42 * len(variants) + 2.5))
    values = [[sum(c["leak"] for c in by_cell.get((v, s), [])) for s in servers] for v in variants]
    shade = [[math.log10(1 + x) for x in row] for row in values]
    top = max((x for row in shade for x in row), default=0.0) or 1.0
    axis.imshow(shade, cmap="Reds", aspect="auto", vmin=0, vmax=top)
    for y, variant in enumerate(variants):
        for x, server in enumerate(servers):
            cells = by_cell.get((variant, server))
            if not cells:
                text = "-"
            else:
                leaked = {c["scenario"] for c in cells if c["leak"]}
                leaking = "".join(mark for name, mark in SCENARIO_MARKS.items() if name in leaked)
                lost = "L" if any(c["lost"] for c in cells) else ""
                text = " ".join(part for part in (leaking, lost) if part) or "0"
            dark = shade[y][x] > top * 0.6  # white text on dark cells
            axis.text(x, y, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    axis.set_xticks(range(len(servers)), servers, fontsize=8, rotation=60, ha="right")
    axis.set_yticks(range(len(variants)), variants, fontsize=8)
    marks = ", ".join(f"{mark} {name}" for name, mark in SCENARIO_MARKS.items())
    axis.set_title(
        "Leak hunt, every server configuration: colour = leaked values (log), letters = scenarios that leaked\n"
        f"({marks}; L = context lost; 0 = nothing failed)",
        fontsize=9,
    )
    return _save(figure, LEAK_CHART)


def draw(summary: dict) -> list[Path]:
    return [path for path in (throughput_chart(summary), cost_chart(summary), leak_chart(summary)) if path]
