"""The chart the report opens with: approach × server kind, coloured by verdict, with the added cost per request."""

from __future__ import annotations

from pathlib import Path

from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from scripts.bench.stats import NOT_SIGNIFICANT
from scripts.common import chart_style
from scripts.common.results import CHARTS_DIR
from scripts.report import decision

DECISION_CHART = "decision.png"
# Colour and short label of each verdict, in decision.SERVER_VERDICTS order (best first).
COLOURS = dict(
    zip(
        decision.SERVER_VERDICTS,
        ("#4caf50", "#8bc34a", "#cddc39", "#ff9800", "#e53935", "#90a4ae", "#eeeeee"),
        strict=True,
    )
)
SHORT = dict(
    zip(
        decision.SERVER_VERDICTS,
        ("correct", "drops startup", "with setting", "stale at entry", "leaks data", "loses context", "not run"),
        strict=True,
    )
)


def _cost_label(row: decision.Row) -> str:
    """The added cost, marked when the measurement does not resolve it from baseline's."""
    comparison = decision._comparison(row)
    if comparison is None:
        return ""
    resolved = comparison["verdict"] != NOT_SIGNIFICANT
    return f"{comparison['added_us']:+.0f} µs" + ("" if resolved else " (n.s.)")


def _setting_keys(found: list[decision.ServerVerdict]) -> dict[str, str]:
    """A letter per distinct setting: a cell says "with A", the caption says what A is (cells are too narrow)."""
    settings = dict.fromkeys(v.setting for v in found if v.verdict == decision.CORRECT_WITH and v.setting)
    return {setting: chr(ord("A") + index) for index, setting in enumerate(settings)}


def _short(setting: str) -> str:
    return " + ".join(part.replace("--worker-class apps.workers.", "worker ") for part in setting.split("; "))


def decision_chart(rows: list[decision.Row], load: dict | None) -> Path | None:
    kinds = decision.server_kinds(load)
    verdicts = decision.per_server(load)
    rows = [row for row in rows if any((row.variant.name, kind) in verdicts for kind in kinds)]
    if not rows or not kinds:
        return None
    order = list(COLOURS)
    found = [[verdicts.get((row.variant.name, kind), _not_run()) for kind in kinds] for row in rows]
    keys = _setting_keys([cell for line in found for cell in line])
    figure, axis = chart_style.figure(0.5 * len(rows) + 3.4)
    axis.imshow(
        [[order.index(cell.verdict) for cell in line] for line in found],
        cmap=ListedColormap(list(COLOURS.values())),
        vmin=0,
        vmax=len(order) - 1,
        aspect="auto",
    )
    # Only a cell whose colour needs a qualifier carries text: which setting makes it correct.
    for y, line in enumerate(found):
        for x, cell in enumerate(line):
            if cell.verdict == decision.CORRECT_WITH and cell.setting:
                axis.text(x, y, f"with {keys[cell.setting]}", ha="center", va="center")
    axis.set_xticks(range(len(kinds)), kinds)
    axis.xaxis.tick_top()
    axis.tick_params(length=0)
    axis.set_yticks(range(len(rows)), [row.variant.name for row in rows])
    costs = axis.secondary_yaxis("right")
    costs.set_yticks(range(len(rows)), [_cost_label(row) for row in rows])
    costs.tick_params(length=0)
    axis.annotate("µs added", (1, 1), xycoords="axes fraction", xytext=(4, 4), textcoords="offset points", va="bottom")
    axis.set_xticks([x - 0.5 for x in range(1, len(kinds))], minor=True)
    axis.set_yticks([y - 0.5 for y in range(1, len(rows))], minor=True)
    axis.grid(which="minor", color="white", linewidth=1.5)
    axis.tick_params(which="minor", length=0)
    figure.legend(
        handles=[Patch(color=colour, label=SHORT[name]) for name, colour in COLOURS.items()],
        loc="outside upper center",
        ncols=3,
        frameon=False,
        title="Which approach is correct on which server",  # the legend's title: a suptitle would overlap it
        title_fontsize=chart_style.TITLE_PT,
    )
    settings = "".join(f"\nwith {key}: {_short(setting)}" for setting, key in keys.items())
    chart_style.caption(
        figure,
        "Leak hunt, each server kind at its default settings. µs added: CPU per GET over baseline "
        "(in-process, paired); n.s. = not significant." + settings,
    )
    return chart_style.save(figure, CHARTS_DIR / DECISION_CHART)


def _not_run() -> decision.ServerVerdict:
    return decision.ServerVerdict(decision.NOT_RUN, None, 0, 0, 0, 0, 0)
