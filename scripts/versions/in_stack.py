"""Run inside a stack's interpreter (cwd = repo root): the in-process verdicts and the matrix of that stack, as JSON.

Only the standard library and scripts.common.environment (stdlib only) are imported at module level: the rest of the
project is imported per variant (and per matrix cell) so that an API an old stack lacks becomes that piece's
"cannot run: <reason>", never a crash.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import traceback
from collections import Counter
from pathlib import Path

from scripts.common import environment

FRESH_SUFFIX = "_fresh_context"  # as scripts.bench.verify names the --reset-contextvars scenarios
CANNOT_RUN = "cannot run"


def reason(exc: BaseException) -> str:
    """One line naming what failed and where (the innermost project or library frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}".replace("\n", " ")[:300]


def verdicts(name: str, count: int) -> dict[str, object]:
    """Failure counts per scenario, the registry's verdict on them; `cannot run` if the stack lacks an API."""
    try:
        conformance = importlib.import_module("apps.harness.conformance")
        registry = importlib.import_module("apps.harness.registry")
        variant = (
            registry.get(name) if hasattr(registry, "get") else next(v for v in registry.VARIANTS if v.name == name)
        )
        variant.load()
    except Exception as exc:
        # Anything: an old FastAPI rejecting an annotation (TypeError), pydantic 1's ConfigError, an AssertionError in
        # a library's import; one variant that cannot run must not take the others down with it.
        return {"status": CANNOT_RUN, "reason": reason(exc)}
    counts: dict[str, dict[str, int] | str] = {}
    for scenario in registry.SCENARIOS:
        counts[scenario] = measure(conformance, variant, scenario, count, fresh=False)
    for scenario in registry.CHAINED:
        counts[f"{scenario}{FRESH_SUFFIX}"] = measure(conformance, variant, scenario, count, fresh=True)
    measured = {s: c for s, c in counts.items() if isinstance(c, dict) and s in registry.SCENARIOS}
    try:
        complete = len(measured) == len(registry.SCENARIOS)
        problems = conformance.scenario_problems(variant, measured) if complete else None
    except Exception as exc:
        problems = [f"{CANNOT_RUN}: {reason(exc)}"]
    return {"status": "ran", "failures": counts, "registry_problems": problems}


def measure(conformance: object, variant: object, scenario: str, count: int, fresh: bool) -> dict[str, int] | str:
    """One scenario's failure counts, or `error: <reason>` (a non-200 answer, an API that broke at request time)."""
    try:
        found: Counter[str] = conformance.verdicts(variant, scenario, count=count, fresh_context=fresh)  # type: ignore[attr-defined]
        return dict(found)
    except Exception as exc:
        return f"error: {reason(exc)}"


def matrix() -> dict[str, object]:
    """scripts/matrix on this stack, cell by cell: a set point whose app cannot be built is `cannot run`."""
    try:
        run = importlib.import_module("scripts.matrix.matrix")
        m = run.m
    except Exception as exc:
        return {"status": CANNOT_RUN, "reason": reason(exc)}
    cells: dict[str, dict[str, dict[str, str]]] = {}
    for kind in m.MECHANISMS:
        for set_point in m.SET_POINTS:
            row: dict[str, str] = {}
            for order in m.ORDERS:
                try:
                    readings = run.readings_of(kind, set_point, order)
                except Exception as exc:
                    row = {col: f"{CANNOT_RUN}: {reason(exc)}" for col in run.COLUMNS}
                    break
                for point in (*m.MIDDLEWARE_READS, *m.APP_READS):
                    if point in m.APP_READS and order != m.ORDERS[0]:
                        continue  # as scripts.matrix.matrix: app reads are reported from the first order
                    label, _ = run.judge(readings.get((run.JUDGED_ON.get(point, m.NORMAL_PATH), point), []))
                    row[run.column(point, order)] = label
            cells.setdefault(kind, {})[set_point] = row
    return {
        "status": "ran",
        "mechanisms": list(m.MECHANISMS),
        "set_points": list(m.SET_POINTS),
        "columns": list(run.COLUMNS),
        "cells": cells,
    }


def main(argv: list[str]) -> int:
    """`python -m scripts.versions.in_stack OUT.json REQUESTS VARIANT...` (the versions command names the variants)."""
    out, count, names = Path(argv[0]), int(argv[1]), tuple(argv[2:])
    result = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "packages": environment.package_versions(),
        "requests_per_scenario": count,
        "variants": {},
    }
    for name in names:
        result["variants"][name] = verdicts(name, count)
        print(f"    in-process {name}: {result['variants'][name]['status']}", flush=True)
    result["matrix"] = matrix()
    print(f"    matrix: {result['matrix']['status']}", flush=True)
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
