"""Every chart, drawn from the committed summaries, fits a 1,000 px page column with no text under the body size."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.figure
import matplotlib.pyplot as plt
import pytest
from matplotlib.text import Text

from scripts.bench import bench_charts
from scripts.common import chart_style
from scripts.common import results as resultfiles
from scripts.load import load_charts
from scripts.matrix import matrix
from scripts.report import decision, decision_chart
from scripts.report.report import load_sources
from scripts.versions import report as versions_report


def _bench(out: Path) -> list[Path]:
    return bench_charts.draw_all(resultfiles.read_json(resultfiles.BENCH_DIR / "summary.json"), out)


def _load(out: Path) -> list[Path]:
    return load_charts.draw(resultfiles.read_json(resultfiles.LOAD_DIR / "summary.json"))


def _matrix(out: Path) -> list[Path]:
    return [matrix.chart(resultfiles.read_json(matrix.MATRIX_JSON), out / matrix.MATRIX_PNG.name)]


def _versions(out: Path) -> list[Path | None]:
    return [versions_report.chart(versions_report.load(), out / versions_report.CHART_NAME)]


def _decision(out: Path) -> list[Path | None]:
    sources = load_sources(resultfiles.RESULTS)
    return [decision_chart.decision_chart(decision.decide(sources), sources["load"])]


DRAWERS: dict[str, tuple[Callable[[Path], list], tuple[str, ...]]] = {
    "bench": (
        _bench,
        (
            bench_charts.APPS_CHART,
            bench_charts.PRIMITIVES_CHART,
            bench_charts.DEPTH_CHART,
            bench_charts.INSTRUCTIONS_CHART,
            bench_charts.ATTRIBUTION_CHART,
        ),
    ),
    "load": (_load, (load_charts.THROUGHPUT_CHART, load_charts.COST_CHART, load_charts.LEAK_CHART)),
    "matrix": (_matrix, (matrix.MATRIX_PNG.name,)),
    "versions": (_versions, (versions_report.CHART_NAME,)),
    "decision": (_decision, (decision_chart.DECISION_CHART,)),
}


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a PNG always starts with."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path.name} is not a PNG"
    return struct.unpack(">II", head[16:24])


def visible_texts(fig: matplotlib.figure.Figure) -> list[Text]:
    return [
        text
        for text in fig.findobj(Text)
        if text.get_visible() and text.get_text().strip() and (text.axes is None or text.axes.get_visible())
    ]


@pytest.mark.parametrize("stage", list(DRAWERS))
def test_every_chart_fits_the_column_with_readable_text(
    stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    matplotlib.rcdefaults()  # a chart that forgets the style is caught, whatever another chart set before it
    for module in (load_charts, decision_chart):
        monkeypatch.setattr(module, "CHARTS_DIR", tmp_path)
    small: dict[str, list[str]] = {}
    original = matplotlib.figure.Figure.savefig

    def inspecting_savefig(fig: matplotlib.figure.Figure, target: object, **kwargs: object) -> None:
        original(fig, target, **kwargs)  # drawn first: tick labels and layout are final now
        name = Path(str(target)).name.removeprefix(".").removesuffix(".tmp.png")
        dpi = float(kwargs.get("dpi") or plt.rcParams["savefig.dpi"])  # type: ignore[arg-type]
        # Size on the page is points × dpi / 72 pixels: at another dpi the same points would read smaller.
        minimum_px = chart_style.MIN_FONT_PT * chart_style.DPI / 72
        small[name] = [
            f"{text.get_text()[:40]!r} {text.get_fontsize():.1f} pt at {dpi:.0f} dpi"
            for text in visible_texts(fig)
            if text.get_fontsize() * dpi / 72 < minimum_px - 1e-6
        ]

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", inspecting_savefig)
    draw, names = DRAWERS[stage]
    drawn = [path for path in draw(tmp_path) if path]
    assert sorted(path.name for path in drawn) == sorted(names), "a chart was not drawn from the committed results"
    for path in drawn:
        width, _ = png_size(path)
        assert width <= chart_style.COLUMN_PX, f"{path.name} is {width} px wide, the column {chart_style.COLUMN_PX}"
        assert not small[path.name], f"{path.name}: text under {chart_style.MIN_FONT_PT} pt: {small[path.name][:8]}"


def test_the_size_check_catches_a_wide_chart_with_small_text(tmp_path: Path) -> None:
    """Negative control: a chart drawn as the charts were before (wide, 7 pt labels) fails both checks."""
    fig, axis = plt.subplots(figsize=(17, 5))
    axis.text(0.5, 0.5, "note", fontsize=7)
    fig.savefig(tmp_path / "wide.png", dpi=110)
    assert png_size(tmp_path / "wide.png")[0] > chart_style.COLUMN_PX
    assert any(text.get_fontsize() < chart_style.MIN_FONT_PT for text in visible_texts(fig))
    plt.close(fig)
