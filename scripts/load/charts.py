"""Charts of the load results, drawn from summary.json alone (matplotlib, Agg backend, PNG under results/charts/)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here; chosen before pyplot is imported
import matplotlib.pyplot as plt

from apps import registry
from scripts.common.results import CHARTS_DIR

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


def leak_chart(summary: dict) -> Path | None:
    grid = summary["leak_grid"]
    if not grid:
        return None
    order = [v.name for v in registry.VARIANTS]
    variants = [v for v in order if any(cell["variant"] == v for cell in grid)]
    columns = sorted({(cell["scenario"], cell["server"]) for cell in grid}, key=lambda c: (c[1], c[0]))
    cells = {(cell["variant"], cell["scenario"], cell["server"]): cell for cell in grid}
    figure, axes = plt.subplots(1, 2, figsize=(max(12, len(columns) * 1.3), 0.45 * len(variants) + 3))
    for axis, verdict, colours in ((axes[0], "leak", "Reds"), (axes[1], "lost", "Blues")):
        values = [[cells.get((v, *c), {}).get(verdict) for c in columns] for v in variants]
        shade = [[math.log10(1 + x) if x is not None else float("nan") for x in row] for row in values]
        top = max((x for row in shade for x in row if not math.isnan(x)), default=0.0) or 1.0
        axis.imshow(shade, cmap=colours, aspect="auto", vmin=0, vmax=top)
        for y, row in enumerate(values):
            for x, value in enumerate(row):
                requests = cells.get((variants[y], *columns[x]), {}).get("requests", 0)
                text = "-" if value is None else f"{value}\n/{requests}"
                dark = not math.isnan(shade[y][x]) and shade[y][x] > top * 0.6  # white text on dark cells
                axis.text(x, y, text, ha="center", va="center", fontsize=6, color="white" if dark else "black")
        axis.set_xticks(range(len(columns)), [f"{s}\n{server}" for s, server in columns], fontsize=7, rotation=90)
        axis.set_yticks(range(len(variants)), variants if verdict == "leak" else [], fontsize=8)
        axis.set_title(f"{verdict}: failing checkpoint.field values / requests (colour: log scale)")
    figure.suptitle("Leak hunt on a real uvicorn: 0 everywhere in a row means that approach was never caught")
    return _save(figure, LEAK_CHART)


def draw(summary: dict) -> list[Path]:
    return [path for path in (throughput_chart(summary), cost_chart(summary), leak_chart(summary)) if path]
