"""The report is generated from raw result files alone, and its decision table and recommendation follow the data."""

import json
from pathlib import Path

import pytest

from apps.harness import registry
from scripts.bench.verify import fresh
from scripts.common import results as resultfiles
from scripts.report import decision, report

ENV = {"created_utc": "2026-01-01T00:00:00+00:00", "python": "3.11.7", "cpu": "fixture", "cpu_count": 2,
       "git": {"commit": "0" * 40, "dirty": False}, "packages": {"fastapi": "0"}, "parameters": {"mode": "fixture",
       "requests_per_scenario": 10}}  # fmt: skip
CLEAN = {"concurrent": {}, "keepalive": {}, fresh("keepalive"): {}}


def verify_fixture() -> dict:
    variants = {v.name: {"failures": dict(CLEAN), "conforms": True, "problems": []} for v in registry.VARIANTS}
    variants["contextvar_asgi"]["failures"] = {**CLEAN, "keepalive": {"entry.request_id:leak": 9}}
    variants["global_state"]["failures"] = {**CLEAN, "concurrent": {"service.user_id:leak": 5}}
    return {"environment": ENV, "variants": variants}


def bench_row(variant: str, median: float, added: float | None, verdict: str) -> dict:
    row = {"variant": variant, "method": "get", "series": "main", "median_us": median, "iqr_pct": 1.0,
           "stdev_pct": 1.5, "runs": 3}  # fmt: skip
    if added is not None:
        row["vs_baseline"] = {"added_us": added, "added_pct": 100 * added / 100.0, "ratio": 1 + added / 100.0,
                              "verdict": verdict, "design": "paired", "threshold_pct": 4.0}  # fmt: skip
    return row


def bench_fixture() -> dict:
    apps = [bench_row("baseline", 100.0, None, "")]
    apps += [bench_row(v.name, 100.0 + 1 + i, 1.0 + i, "slower") for i, v in enumerate(registry.VARIANTS[1:])]
    for row in apps:  # the fixture's cheapest immune approaches are request_state and explicit
        if row["variant"] == "contextvar_isolated":
            row.update(bench_row("contextvar_isolated", 150.0, 50.0, "slower"))
    return {"environment": ENV, "timer": "time.process_time", "apps": apps, "aa": [],
            "significance": {"rule": "fixture", "min_effect_pct": 2.0, "z": 2.0}, "targets": [], "primitives": [],
            "depth": [], "depth_per_layer_us": {}}  # fmt: skip


def load_fixture(leaking: str) -> dict:
    grid = [{"variant": v.name, "category": v.category, "scenario": "pipeline", "server": "uvloop-httptools",
             "runs": 1, "requests": 100, "failed_requests": 0, "leak": 0, "lost": 0, "other": 0, "failures": {}}
            for v in registry.VARIANTS]  # fmt: skip
    leak_cell = next(cell for cell in grid if cell["variant"] == leaking)
    leak_cell.update(leak=3, failed_requests=3, failures={"service.tenant_id:leak": 3})
    return {"environment": ENV, "leak_grid": grid, "cost": None, "latency": {}, "throughput": [],
            "client_cpu": None, "generator_bound": []}  # fmt: skip


def write_fixture(root: Path, leaking: str) -> Path:
    for name, data in (("verify", verify_fixture()), ("bench", bench_fixture()), ("load", load_fixture(leaking))):
        path = root / report.SOURCES[name].relative_to(resultfiles.RESULTS)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    return root


def rows_by_name(root: Path) -> dict[str, decision.Row]:
    return {row.variant.name: row for row in decision.decide(report.load_sources(root))}


def test_a_leak_under_load_makes_the_variant_a_leaker_and_moves_the_recommendation(tmp_path: Path) -> None:
    first = rows_by_name(write_fixture(tmp_path / "a", leaking="explicit"))
    assert first["explicit"].verdict == decision.LEAKS
    assert first["request_state"].verdict == decision.IMMUNE
    second = rows_by_name(write_fixture(tmp_path / "b", leaking="request_state"))
    assert second["request_state"].verdict == decision.LEAKS
    assert second["explicit"].verdict == decision.IMMUNE
    answer_a, answer_b = decision.answer(list(first.values())), decision.answer(list(second.values()))
    assert "`request_state`" in answer_a and "`explicit`" not in answer_a
    assert "`explicit`" in answer_b and "`request_state`" not in answer_b


def test_entry_only_leaks_that_a_fresh_context_removes_are_told_apart(tmp_path: Path) -> None:
    rows = rows_by_name(write_fixture(tmp_path, leaking="global_state"))
    assert rows["contextvar_asgi"].verdict == decision.SAFE_WITH_RESET
    assert rows["global_state"].verdict == decision.LEAKS


def test_report_is_generated_from_the_files_and_is_reproducible(tmp_path: Path) -> None:
    root = write_fixture(tmp_path, leaking="explicit")
    first = report.render(root)
    assert first == report.render(root)
    assert "service.tenant_id" not in first or "explicit" in first
    table = "\n".join(decision.table_lines(decision.decide(report.load_sources(root))))
    assert "| `explicit` | approach | explicit argument | leaks another request's data |" in table
    assert "| `explicit` | approach | explicit argument | leaks | " in first  # the first screen's grid
    assert "missing: run `make matrix`" in first  # a missing source is said, not invented


@pytest.mark.parametrize("missing", ["bench", "load"])
def test_missing_sources_leave_their_sections_out(tmp_path: Path, missing: str) -> None:
    root = write_fixture(tmp_path, leaking="explicit")
    (root / report.SOURCES[missing].relative_to(resultfiles.RESULTS)).unlink()
    text = report.render(root)
    assert f"missing: run `{report.REPRODUCE[missing]}`" in text


def test_a_leak_whose_fresh_context_twin_is_clean_is_said_to_be_fixed_by_reset(tmp_path: Path) -> None:
    root = write_fixture(tmp_path, leaking="explicit")
    load_path = root / report.SOURCES["load"].relative_to(resultfiles.RESULTS)
    load = json.loads(load_path.read_text())
    twin = {**next(c for c in load["leak_grid"] if c["variant"] == "explicit"), "server": "uvloop-httptools-reset"}
    twin.update(leak=0, failed_requests=0, failures={})
    load["leak_grid"].append(twin)
    load_path.write_text(json.dumps(load))
    assert rows_by_name(root)["explicit"].verdict == f"{decision.LEAKS} (none with a fresh-Context setting)"


def test_failures_that_are_not_leaks_are_reported_not_dropped(tmp_path: Path) -> None:
    root = write_fixture(tmp_path, leaking="explicit")
    load_path = root / report.SOURCES["load"].relative_to(resultfiles.RESULTS)
    load = json.loads(load_path.read_text())
    next(c for c in load["leak_grid"] if c["variant"] == "request_state")["failures"] = {"status:500": 2}
    load_path.write_text(json.dumps(load))
    row = rows_by_name(root)["request_state"]
    assert row.verdict == decision.IMMUNE  # a 500 is no leak, but the reader must see it
    assert "other failures (status, transport): 2" in decision.where_failed(row.outcome)


def grid_cell(variant: str, server: str, leak: dict[str, int] | None = None, lost: int = 0, dropped: int = 0) -> dict:
    failures = dict(leak or {}) | ({"audit.user_id:lost": lost} if lost else {})
    failures |= {"entry.startup:dropped": dropped} if dropped else {}
    return {"variant": variant, "category": "fixture", "scenario": "pipeline", "server": server, "runs": 1,
            "requests": 100, "failed_requests": 0, "leak": sum((leak or {}).values()), "lost": lost, "other": 0,
            "dropped": dropped, "failures": failures}  # fmt: skip


def test_per_server_verdicts_follow_the_cells_and_name_the_fixing_setting() -> None:
    entry = {"entry.user_id:leak": 4}
    downstream = {"service.user_id:leak": 4}
    load = {
        "leak_grid": [
            grid_cell("contextvar_asgi", "uvloop-httptools", entry),
            grid_cell("contextvar_asgi", "uvloop-httptools-reset"),
            grid_cell("contextvar_asgi", "daphne", entry),
            grid_cell("contextvar_conditional", "gunicorn-uvicorn", downstream),
            grid_cell("contextvar_conditional", "gunicorn-uvicorn-reset", downstream),
            grid_cell("baseline", "granian", lost=7),
            grid_cell("explicit", "granian"),
        ]
    }
    verdicts = decision.per_server(load)
    fixed = verdicts[("contextvar_asgi", "uvicorn")]
    assert (fixed.verdict, fixed.setting) == (decision.CORRECT_WITH, "--reset-contextvars")
    assert verdicts[("contextvar_asgi", "daphne")].verdict == decision.STALE_AT_ENTRY  # daphne has no setting
    assert verdicts[("contextvar_conditional", "gunicorn")].verdict == decision.LEAKS  # its twin leaked too
    assert verdicts[("baseline", "granian")].verdict == decision.LOSES
    assert verdicts[("explicit", "granian")].verdict == decision.CORRECT
    assert ("explicit", "uvicorn") not in verdicts
    assert decision.server_kinds(load) == ["uvicorn", "gunicorn", "granian", "daphne"]


def test_a_variant_without_any_result_is_not_called_correct() -> None:
    assert decision.classify(decision.Outcome()) == decision.NOT_RUN


def test_observability_section_names_the_harm_and_where_it_was_zero() -> None:
    from scripts.report import observability

    leaked = grid_cell("sentry_scope", "uvloop-httptools", {"event.user_id:leak": 5, "entry.user_id:leak": 5})
    load = {"leak_grid": [leaked, grid_cell("sentry_scope", "uvloop-httptools-reset")]}
    text = "\n".join(observability.section({"load": load, "verify": None}))
    assert "an anonymous request's error report carried another request's user | pipeline | 5 / 100" in text
    assert "Nothing misattributed on: uvloop-httptools-reset." in text
    assert observability.section({"load": {"leak_grid": [grid_cell("explicit", "daphne")]}}) == []
