"""Draw the microbenchmark charts (PNG, matplotlib Agg) from summary.json alone, rebuilt from the pyperf JSON."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI or this server; set before pyplot is imported

import matplotlib.pyplot as plt  # after the backend choice

from scripts.benchstats import BASELINE, METHODS

APPS_CHART, PRIMITIVES_CHART, DEPTH_CHART = "bench_apps.png", "bench_primitives.png", "bench_depth.png"
VERDICT_COLORS = {"slower": "tab:red", "faster": "tab:green", "not significant": "tab:gray", None: "tab:blue"}
DPI = 110


def draw_apps(summary: dict, path: Path) -> Path:
    """Median µs per request by variant (IQR whiskers), baseline's median as a line: the bar past it is the cost."""
    fig, axes = plt.subplots(1, len(METHODS), figsize=(13, 5.5), sharey=True)
    order = sorted({row["variant"] for row in summary["apps"]})
    for axis, method in zip(axes, METHODS, strict=True):
        rows = {row["variant"]: row for row in summary["apps"] if row["method"] == method}
        names = [name for name in order if name in rows]
        medians = [rows[name]["median_us"] for name in names]
        low = [rows[name]["median_us"] - rows[name]["p25_us"] for name in names]
        high = [rows[name]["p75_us"] - rows[name]["median_us"] for name in names]
        colors = [VERDICT_COLORS[(rows[name].get("vs_baseline") or {}).get("verdict")] for name in names]
        axis.barh(names, medians, xerr=[low, high], color=colors, capsize=3)
        if BASELINE in rows:
            axis.axvline(rows[BASELINE]["median_us"], color="black", linestyle="--", linewidth=1, label="baseline")
        for index, name in enumerate(names):
            versus = rows[name].get("vs_baseline")
            if versus:
                note = f"{versus['added_us']:+.0f} µs ({versus['added_pct']:+.1f}%) {versus['verdict']}"
                axis.text(medians[index] + high[index] + 3, index, note, va="center", fontsize=7)
        axis.set_title(f"{method.upper()}: CPU µs per request (median, IQR)")
        axis.set_xlabel("µs per request")
        axis.set_xlim(0, max(m + h for m, h in zip(medians, high, strict=True)) * 1.55 if medians else 1)
        axis.legend(loc="lower right", fontsize=8)
    fig.suptitle("Cost per request by variant; past the dashed line: added over baseline (colour: verdict)")
    return save(fig, path)


def draw_primitives(summary: dict, path: Path) -> Path:
    rows = sorted(summary["primitives"], key=lambda row: row["median_ns"])
    fig, axis = plt.subplots(figsize=(8, 4))
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
    return save(fig, path)


def draw_depth(summary: dict, path: Path) -> Path:
    fig, axis = plt.subplots(figsize=(8, 4.5))
    for kind, per_layer in summary["depth_per_layer_us"].items():
        rows = sorted((row for row in summary["depth"] if row["kind"] == kind), key=lambda row: row["depth"])
        label = f"{kind} ({per_layer:.1f} µs per layer)" if per_layer is not None else kind
        axis.errorbar(
            [row["depth"] for row in rows],
            [row["median_us"] for row in rows],
            yerr=[[r["median_us"] - r["p25_us"] for r in rows], [r["p75_us"] - r["median_us"] for r in rows]],
            marker="o",
            capsize=3,
            label=label,
        )
    axis.set_xlabel("stacked context middlewares")
    axis.set_ylabel("CPU µs per request (median, IQR)")
    axis.set_title("Cost against middleware depth")
    axis.set_ylim(bottom=0)
    axis.legend()
    return save(fig, path)


def save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=DPI)
    plt.close(fig)
    tmp.replace(path)  # atomic: a reader never sees half a PNG
    return path


def draw_all(summary: dict, charts_dir: Path) -> list[Path]:
    """Every chart from one summary (as benchstats.summarize returns it)."""
    drawn = []
    if summary["apps"]:
        drawn.append(draw_apps(summary, charts_dir / APPS_CHART))
    if summary["primitives"]:
        drawn.append(draw_primitives(summary, charts_dir / PRIMITIVES_CHART))
    if summary["depth"]:
        drawn.append(draw_depth(summary, charts_dir / DEPTH_CHART))
    return drawn
