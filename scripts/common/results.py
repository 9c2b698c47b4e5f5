"""Where raw results live under results/, and how they are written (atomically) and read."""

from __future__ import annotations

import json
import os
import posixpath
import re
from pathlib import Path
from typing import Any

from ctxbench.files import umask_mode, write_json, write_text  # noqa: F401 - the suite imports them from here
from scripts.common.environment import ROOT

RESULTS = ROOT / "results"
BENCH_DIR = RESULTS / "bench"
LOAD_DIR = RESULTS / "load"
SOAK_DIR = RESULTS / "soak"
SOAK_FOLLOWUP_DIR = RESULTS / "soak_followup"  # one pair soaked again, alone and longer: `soak --pair ... --out` here
MATRIX_DIR = RESULTS / "matrix"
CHARTS_DIR = RESULTS / "charts"
REPORT_PATH = RESULTS / "REPORT.md"
# A Markdown link or image target that is a path (not a web address, not an anchor alone).
LOCAL_LINK = re.compile(r"(\]\()(?![a-z][a-z0-9+.-]*:|#|/)([^)\s#]+)")


def relink(text: str, page_dir: str) -> str:
    """Links written relative to results/ (as every section writes them), made relative to a page in `page_dir`
    (a folder relative to results/, "" for results/ itself): the same section reads right on any page."""
    if not page_dir:
        return text
    return LOCAL_LINK.sub(lambda m: m.group(1) + posixpath.relpath(m.group(2), page_dir), text)


def write_page(results_dir: Path, page: Path, text: str) -> Path:
    """Write a Markdown page at `page` (relative to results/), its links rewritten from results/ to its folder."""
    return write_text(results_dir / page, relink(text, page.parent.as_posix() if page.parent != Path(".") else ""))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def write_figure(figure: Any, path: Path, **savefig: Any) -> Path:
    """Save a matplotlib figure as PNG through a temporary file and a rename (atomic, like every result), close it."""
    import matplotlib.pyplot as plt  # only the chart-drawing stages need matplotlib

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        figure.savefig(tmp, **savefig)
        os.replace(tmp, path)
    finally:
        plt.close(figure)
        tmp.unlink(missing_ok=True)
    return path
