"""One style for every chart: drawn for a page column about 1,000 px wide, no label smaller than the page's text."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI or this server; set before pyplot is imported
import matplotlib.pyplot as plt  # after the backend choice

from scripts.common.results import write_figure

# A code-hosting page shows a report in a column about 1,000 px wide and shrinks wider images to it: a chart drawn
# exactly that wide is shown at its own size, so its point sizes are what the reader sees.
COLUMN_PX = 1000
DPI = 100
WIDTH_IN = COLUMN_PX / DPI
# The page's body text is 16 px, 11.5 pt at 100 dpi: no chart text is smaller than 12 pt.
MIN_FONT_PT = 12.0
TITLE_PT = 14.0
# Characters of 12 pt text that fit on one line of the full width (DejaVu Sans averages ~7 pt per character).
LINE_CHARS = 100

RC = {
    "font.size": MIN_FONT_PT,
    "axes.titlesize": MIN_FONT_PT,
    "axes.labelsize": MIN_FONT_PT,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
    "figure.titlesize": TITLE_PT,
    "figure.labelsize": MIN_FONT_PT,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
}


def apply() -> None:
    """Set the sizes every text of a new figure starts from (explicit sizes elsewhere use MIN_FONT_PT or more)."""
    plt.rcParams.update(RC)


def figure(height_in: float, rows: int = 1, cols: int = 1, **subplots: Any) -> tuple[plt.Figure, Any]:
    """A figure exactly one column wide, laid out inside that width (constrained layout: labels never widen it)."""
    apply()
    return plt.subplots(rows, cols, figsize=(WIDTH_IN, height_in), layout="constrained", dpi=DPI, **subplots)


def wrap(text: str, chars: int = LINE_CHARS) -> str:
    """Break a caption into lines that fit the column at the minimum size (each paragraph kept on its own lines)."""
    return "\n".join(textwrap.fill(part, chars, break_on_hyphens=False) for part in text.split("\n"))


def numbered(names: list[str]) -> str:
    """A key "1 name; 2 name; ...": each entry held on one line (no-break spaces), so a number stays by its name."""
    return "; ".join(f"{n} {name}".replace(" ", "\u00a0") for n, name in enumerate(names, start=1))


def caption(fig: plt.Figure, text: str) -> None:
    """A key or note under the axes, inside the figure's width (constrained layout makes room for it)."""
    fig.supxlabel(wrap(text), fontsize=MIN_FONT_PT, ha="left", x=0.01, multialignment="left")


def numbered_heatmap(ax: Any, grid: list[list[int]], cmap: Any, colours: int, rows: list[str]) -> None:
    """A verdict grid: columns numbered 1..n (their names go in a caption), rows named, white lines between cells."""
    columns = len(grid[0]) if grid else 0
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=colours - 1, aspect="auto")
    ax.set_xticks(range(columns), [str(n) for n in range(1, columns + 1)])
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xticks([x - 0.5 for x in range(1, columns)], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(rows))], minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="both", length=0)


def save(fig: plt.Figure, path: Path) -> Path:
    """Save at the column's DPI and the figure's own size: never bbox_inches="tight", which would widen it."""
    return write_figure(fig, path, dpi=DPI)
