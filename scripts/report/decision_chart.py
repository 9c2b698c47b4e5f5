"""The chart the report opens with: approach × server kind, coloured by verdict, with the added cost per request."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here; chosen before pyplot is imported
import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from scripts.common.results import CHARTS_DIR, write_figure
from scripts.report import decision

DECISION_CHART = "decision.png"
DPI = 120
# Colour and short label of each verdict, in decision.SERVER_VERDICTS order (best first).
COLOURS = dict(
    zip(decision.SERVER_VERDICTS, ("#4caf50", "#cddc39", "#ff9800", "#e53935", "#90a4ae", "#eeeeee"), strict=True)
)
SHORT = dict(
    zip(
        decision.SERVER_VERDICTS,
        ("correct", "with setting", "stale at entry", "leaks data", "loses context", "not run"),
        strict=True,
    )
)


def _cost_label(row: decision.Row) -> str:
    comparison = decision._comparison(row)
    if comparison is None:
        return row.variant.name
    return f"{row.variant.name}  ({comparison['added_us']:+.0f} µs, {comparison['verdict']})"


def decision_chart(rows: list[decision.Row], load: dict | None) -> Path | None:
    kinds = decision.server_kinds(load)
    verdicts = decision.per_server(load)
    rows = [row for row in rows if any((row.variant.name, kind) in verdicts for kind in kinds)]
    if not rows or not kinds:
        return None
    order = list(COLOURS)
    values = [
        [order.index(verdicts.get((row.variant.name, kind), _not_run()).verdict) for kind in kinds] for row in rows
    ]
    figure, axis = plt.subplots(figsize=(2.0 * len(kinds) + 5, 0.42 * len(rows) + 2.2))
    axis.imshow(values, cmap=ListedColormap(list(COLOURS.values())), vmin=0, vmax=len(order) - 1, aspect="auto")
    for y, row in enumerate(rows):
        for x, kind in enumerate(kinds):
            found = verdicts.get((row.variant.name, kind), _not_run())
            text = SHORT[found.verdict]
            if found.verdict == decision.CORRECT_WITH:
                text = "with ctxbench's reset worker" if "--worker-class" in found.setting else f"with {found.setting}"
            axis.text(x, y, text, ha="center", va="center", fontsize=7)
    axis.set_xticks(range(len(kinds)), kinds, fontsize=9)
    axis.xaxis.tick_top()
    axis.set_yticks(range(len(rows)), [_cost_label(row) for row in rows], fontsize=8)
    axis.legend(
        handles=[Patch(color=colour, label=SHORT[name]) for name, colour in COLOURS.items()],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.02),
        ncol=len(COLOURS),
        fontsize=7,
        frameon=False,
    )
    axis.set_title(
        "Which approach is correct on which server (leak hunt, default settings of each kind; "
        "'with' = only with that setting)\nµs: CPU added per GET over baseline, in-process, paired",
        fontsize=9,
        pad=28,
    )
    return write_figure(figure, CHARTS_DIR / DECISION_CHART, dpi=DPI, bbox_inches="tight")


def _not_run() -> decision.ServerVerdict:
    return decision.ServerVerdict(decision.NOT_RUN, None, 0, 0, 0, 0, 0)
