"""The bench summary's `attribution` section: per variant, the components added over baseline and the residual."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from microbench.attribution import COMPONENTS, DEPENDENCIES, DESCRIPTIONS, SAME_RUN, VALIDATION, attribution_path

__all__ = ["COMPONENTS", "DEPENDENCIES", "VALIDATION", "breakdown", "summarize"]  # what the report names


# --- Against baseline ----------------------------------------------------------------------------------------------
def added_over(subject: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """Per component: the subject's instructions per request minus the reference's (every component, in order)."""
    return {name: subject.get(name, 0.0) - reference.get(name, 0.0) for name in COMPONENTS}


def breakdown(subject: dict[str, float], reference: dict[str, float], measured_added: float | None) -> dict:
    """The added instructions by component, their sum, the residual against the counted difference, the largest."""
    added = added_over(subject, reference)
    attributed = sum(added.values())
    largest = max(added, key=lambda name: added[name])
    residual = None if measured_added is None else measured_added - attributed
    return {
        "components": added,
        "attributed": attributed,
        "measured": measured_added,
        "residual": residual,
        "residual_pct_of_measured": (
            None if residual is None or not measured_added else 100 * residual / abs(measured_added)
        ),
        "largest": largest,
    }


def summarize(results_dir: Path, counted: list[dict], variants: Iterable[str], baseline: str) -> dict | None:
    """Per variant and method: components added over baseline, their sum, the counted difference and the residual.

    `counted`: the instruction summary's rows (their `vs_baseline.added` is the measured difference). A variant's
    file from a run of its own holds that run's baseline (SAME_RUN), which it is compared with, as its count is.
    """
    records = {}
    for name in variants:
        path = attribution_path(results_dir, name)
        if path.exists():
            records[name] = json.loads(path.read_text())
    measured = {(row["variant"], row["method"]): (row.get("vs_baseline") or {}).get("added") for row in counted}
    totals = {(row["variant"], row["method"]): row["instructions"] for row in counted}
    rows = []
    for name, record in records.items():
        reference = record.get(SAME_RUN) or records.get(baseline)
        if reference is None:
            continue  # counted without a baseline to compare with
        for method, figures in record["methods"].items():
            base = reference["methods"][method]
            row = {"variant": name, "method": method, "instrumented_total": figures["total"]}
            row |= {"run": "own" if SAME_RUN in record else "reference"}
            row["wrapper_events_per_request"] = figures["wrapper_events_per_request"]
            row["absolute"] = {component: figures["components"].get(component, 0.0) for component in COMPONENTS}
            if name != baseline:
                row |= breakdown(figures["components"], base["components"], measured.get((name, method)))
                total = totals.get((name, method))
                row["residual_pct_of_request"] = (
                    None if row["residual"] is None or not total else 100 * row["residual"] / total
                )
            rows.append(row)
    if not rows:
        return None
    residuals = [abs(row["residual"]) for row in rows if row.get("residual") is not None]
    shares = [abs(row["residual_pct_of_request"]) for row in rows if row.get("residual_pct_of_request") is not None]
    return {
        "method": "exclusive (self) Ir of every function, by its C rule or by the component running (attribution.py)",
        "components": list(COMPONENTS),
        "descriptions": dict(DESCRIPTIONS),
        "rows": rows,
        "max_abs_residual": max(residuals, default=None),
        "max_abs_residual_pct_of_request": max(shares, default=None),
    }
