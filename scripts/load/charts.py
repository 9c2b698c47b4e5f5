"""Charts of the load results, drawn from summary.json alone (matplotlib, Agg backend, PNG under results/charts/)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here; chosen before pyplot is imported
import matplotlib.pyplot as plt

from apps import registry
from scripts.common.results import CHARTS_DIR
from scripts.load.servers import BY_LABEL

THROUGHPUT_CHART, COST_CHART, LEAK_CHART = "load_throughput.png", "load_cost.png", "load_leaks.png"
THROUGHPUT_SCENARIO = "get"
DPI = 120


def _save(figure: plt.Figure, name: str) -> Path:
    CHARTS_DIR.mkdir(parents=True, exist_ok=True)
    path = CHARTS_DIR / name
    tmp = CHARTS_DIR / f".{name}.tmp.png"
    figure.savefig(tmp, dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    tmp.replace(path)  # atomic, like every result file
    return path


def throughput_chart(summary: dict) -> Path | None:
    rows = [row for row in summary["throughput"] if row["scenario"] == THROUGHPUT_SCENARIO]
    if not rows:
        return None
    servers = sorted({row["server"] for row in rows})
    server = "uvloop-httptools" if "uvloop-httptools" in servers else servers[0]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for variant in (v.name for v in registry.VARIANTS):
        mine = [r for r in rows if r["variant"] == variant and r["server"] == server and r["rps_median"] is not None]
        points = sorted((r["users"], r["rps_median"], r["p99_ms_median"]) for r in mine)
        if not points:
            continue
        users = [p[0] for p in points]
        left.plot(users, [p[1] for p in points], marker="o", label=variant)
        right.plot(users, [p[2] for p in points], marker="o", label=variant)
    left.set(xlabel="users (closed loop)", ylabel="requests/s", title=f"throughput, {THROUGHPUT_SCENARIO}, {server}")
    right.set(xlabel="users (closed loop)", ylabel="p99 ms", title="p99 latency (closed loop: concurrency/throughput)")
    right.legend(fontsize=7)
    figure.suptitle("Separate runs, one after another on a shared machine: not comparable between variants")
    return _save(figure, THROUGHPUT_CHART)


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
