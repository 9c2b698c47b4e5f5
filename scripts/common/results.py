"""Where raw results live under results/, and how they are written (atomically) and read."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from scripts.common.environment import ROOT

RESULTS = ROOT / "results"
BENCH_DIR = RESULTS / "bench"
LOAD_DIR = RESULTS / "load"
SOAK_DIR = RESULTS / "soak"
SOAK_FOLLOWUP_DIR = RESULTS / "soak_followup"  # one pair soaked again, alone and longer: `soak --pair ... --out` here
MATRIX_DIR = RESULTS / "matrix"
CHARTS_DIR = RESULTS / "charts"
REPORT_PATH = RESULTS / "REPORT.md"


def results_dir_arg(text: str) -> Path:
    """argparse type of every --results-dir/--out: a directory (or one that can be made), never a file."""
    path = Path(text)
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    existing = next((p for p in (path, *path.absolute().parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {existing} is a file, not a directory")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: {existing} is not writable")
    return path


def write_json(path: Path, data: object) -> Path:
    """Write to a temporary file in the same folder, then rename: a reader never sees half a file."""
    return write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
