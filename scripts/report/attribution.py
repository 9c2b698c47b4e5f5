"""The report's lines on where the instructions go: BENCH.md's table, each approach's largest part, explicit's split."""

from __future__ import annotations

from apps.harness import registry
from scripts.bench import bench_charts
from scripts.bench.attribution import COMPONENTS, VALIDATION
from scripts.common import results as resultfiles

METHOD = bench_charts.ATTRIBUTION_METHOD


def rows_by_variant(bench: dict | None) -> dict[str, dict]:
    """variant -> its attribution row for the ranking method (only variants with a breakdown over baseline)."""
    section = ((bench or {}).get("instructions") or {}).get("attribution") or {}
    return {row["variant"]: row for row in section.get("rows", []) if row["method"] == METHOD and "components" in row}


def largest_phrase(row: dict | None) -> str:
    """`largest: parameter validation +251 k`, or nothing when the variant was not attributed."""
    if not row:
        return ""
    return f"largest: {row['largest']} {row['components'][row['largest']] / 1e3:+,.0f} k"


def _k(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e3:+,.1f}"


def explicit_lines(bench: dict | None) -> list[str]:
    """The explicit variants side by side: what the passing costs, and what building the context from Header()
    parameters adds (the difference between them, and the part of it that is FastAPI's parameter validation)."""
    rows = rows_by_variant(bench)
    explicit = [v.name for v in registry.VARIANTS if v.mechanism == registry.EXPLICIT and v.name in rows]
    if len(explicit) < 2 or any(rows[name]["measured"] is None for name in explicit):
        return []
    ordered = sorted(explicit, key=lambda name: rows[name]["measured"])
    cheap, dear = ordered[0], ordered[-1]
    difference = rows[dear]["measured"] - rows[cheap]["measured"]
    apart = {name: rows[dear]["components"][name] - rows[cheap]["components"][name] for name in COMPONENTS}
    # the components that make the difference: each at least a tenth of it, largest first
    parts = sorted((name for name in apart if abs(apart[name]) >= abs(difference) / 10), key=lambda n: -abs(apart[n]))
    return [
        f"**Explicit passing, two ways** (instructions per {METHOD.upper()} over baseline): `{cheap}` "
        f"{rows[cheap]['measured']:+,.0f} ({largest_phrase(rows[cheap])}) reads the three values from the scope in a "
        f"dependency and passes the object down: that is what the passing costs. `{dear}` "
        f"{rows[dear]['measured']:+,.0f} ({largest_phrase(rows[dear])}) builds the same object from `Header()` "
        f"parameters, which adds {difference:+,.0f}: "
        + ", ".join(f"{name} {apart[name]:+,.0f}" for name in parts)
        + f" (the {VALIDATION} is the header validation).",
    ]


def bench_lines(bench: dict | None) -> list[str]:
    """BENCH.md: the stacked chart and the table of every attributed variant, with the residual stated."""
    section = ((bench or {}).get("instructions") or {}).get("attribution")
    rows = bench_charts.attribution_rows(bench or {})
    if not section or not rows:
        return []
    components = section["components"]
    residual = section.get("max_abs_residual_pct_of_request")
    chart = (resultfiles.CHARTS_DIR / bench_charts.ATTRIBUTION_CHART).relative_to(resultfiles.RESULTS)
    lines = [
        "",
        "### Where the instructions go",
        "",
        f"Each variant's instructions per {METHOD.upper()} over baseline, by component (thousands; "
        "`make bench MODE=instructions`, microbench/bm_attribution.py): every C function's own instructions go to "
        "the component its C rule names (CPython's ContextVar code, pydantic-core), else to the component running "
        "when they were executed (the Python functions and middleware layers of microbench/attribution.py, "
        "tracked per asyncio task). The components of a request add up exactly to its instrumented count; the "
        "residual is the counted difference (no instrumentation) minus their sum: the wrappers' own calls and the "
        "garbage collections their allocations trigger"
        + ("." if residual is None else f", at most {residual:.2f}% of a request's instructions."),
        "",
        f"![where the instructions go]({chart.as_posix()})",
        "",
        "| variant | counted | " + " | ".join(components) + " | residual |",
        "|---|" + "---|" * (len(components) + 2),
    ]
    for row in sorted(rows, key=lambda r: -(r["measured"] if r["measured"] is not None else r["attributed"])):
        cells = [_k(row["components"][name]) for name in components]
        lines.append(
            f"| `{row['variant']}` | {_k(row['measured'])} | " + " | ".join(cells) + f" | {_k(row['residual'])} |"
        )
    lines += [
        "",
        "Components: " + "; ".join(f"*{name}*: {text}" for name, text in section["descriptions"].items()) + ".",
    ]
    explicit = explicit_lines(bench)
    return [*lines, *(["", *explicit] if explicit else [])]
