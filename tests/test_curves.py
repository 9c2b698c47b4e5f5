"""The curves summary and chart (`make sweep MODE=curves`) on fixture runs: spread over rounds, generator-bound flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.harness import registry
from scripts.load import load_charts, loadstats, sweep


def fake_run(variant: str, users: int, rps: float, p50: float, p99: float, bound: bool = False) -> tuple[str, dict]:
    run = {"variant": variant, "scenario": "get", "users": users, "tag": sweep.CURVES, "validate": True}
    run["config"] = {"label": "uvloop-httptools"}
    data = {"run": run, "variant_category": registry.get(variant).category, "latency_model": "closed-loop"}
    data |= {"rps": rps, "latency_ms": {"p50": p50, "p90": p99, "p99": p99, "max": p99}}
    data["cpu"] = {"server_us_per_request": 100.0, "generator_bound": bound}
    return f"{variant}-{users}-{rps}.json", data


def fixture_runs() -> list[tuple[str, dict]]:
    runs = []
    for variant, scale in (("baseline", 1.0), ("contextvar_asgi", 0.9)):
        for users in (1, 4, 16, 64):
            for offset in (-10.0, 0.0, 10.0):
                rps = scale * 1000 * min(users, 4) + offset
                runs.append(fake_run(variant, users, rps, users / rps * 1000, 3 * users / rps * 1000, users == 64))
    other = fake_run("baseline", 4, 5000, 1.0, 2.0)
    other[1]["run"]["tag"] = "quick"  # another sweep's run must not count
    runs.append(other)
    return runs


def test_curves_rows_carry_median_spread_and_generator_bound() -> None:
    curves = loadstats.curves(fixture_runs())
    assert curves["users"] == [1, 4, 16, 64]
    assert curves["server"] == "uvloop-httptools"
    row = next(r for r in curves["rows"] if r["variant"] == "baseline" and r["users"] == 4)
    assert row["runs"] == 3
    assert (row["rps_min"], row["rps_median"], row["rps_max"]) == (3990.0, 4000.0, 4010.0)
    assert row["p50_ms_min"] <= row["p50_ms_median"] <= row["p50_ms_max"]
    assert row["generator_bound_runs"] == 0
    top = next(r for r in curves["rows"] if r["variant"] == "contextvar_asgi" and r["users"] == 64)
    assert top["generator_bound_runs"] == 3
    assert loadstats.curves([]) is None


def test_curves_chart_replaces_the_throughput_chart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load_charts, "CHARTS_DIR", tmp_path)
    path = load_charts.throughput_chart({"curves": loadstats.curves(fixture_runs())})
    assert path == tmp_path / load_charts.THROUGHPUT_CHART
    assert path.read_bytes().startswith(b"\x89PNG")
    assert load_charts.throughput_chart({"curves": None}) is None


def test_curves_plan_interleaves_baseline_and_the_recommended_approaches() -> None:
    specs = list(sweep.plan(sweep.CURVES, tuple(v.name for v in registry.VARIANTS), ("get",)))
    recommended = {v.name for v in registry.VARIANTS if v.category == registry.APPROACH}
    assert {spec.variant for spec in specs} == recommended | {"baseline"}
    assert {spec.users for spec in specs} >= {1, 64}
    per_level = len(specs) // len({spec.users for spec in specs})
    first_level = specs[:per_level]
    starts = [first_level[i].variant for i in range(0, per_level, len(recommended) + 1)]
    assert len(set(starts)) == len(starts)  # every round starts with another variant
    assert all(spec.tag == sweep.CURVES and spec.rate_per_s == 0 for spec in specs)
