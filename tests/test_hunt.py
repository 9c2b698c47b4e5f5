"""The settled leak hunt: clean bounds, the stop rule, the plan's estimate, and runs that stop at their verdict."""

from __future__ import annotations

import dataclasses
import json

import psutil
import pytest

from apps.harness import registry
from apps.harness.checker import LEAK, LOST, failure_name
from apps.harness.contract import CHECKPOINTS, ENTRY
from loadtests import scenarios
from loadtests.recorder import Recorder
from scripts.common.lock import exclusive_run
from scripts.load import bounded_run, bounds, hunt, sweep
from scripts.load import servers as serverconfig
from scripts.load.settings import HUNT_STOP_AT, QUICK_DURATION_S, QUICK_USERS_PER_SCENARIO

DOWNSTREAM = next(point for point in CHECKPOINTS if point != ENTRY)


def test_clean_bound_is_the_exact_binomial_bound_and_meets_the_targets() -> None:
    assert bounds.clean_bound(0) is None and bounds.bound_text(0) == "-"
    for n in (1, 38, 300, 3_000):
        p = bounds.clean_bound(n)
        assert (1 - p) ** n == pytest.approx(0.05)  # 0 failures in n has probability 5% at the bound
        assert p < bounds.rule_of_three(n)  # the rule of three is the looser, large-n approximation
    assert bounds.clean_bound(bounds.CLEAN_CELL_TARGET) <= 0.01 < bounds.clean_bound(bounds.CLEAN_CELL_TARGET - 10)
    assert bounds.clean_bound(bounds.CORRECT_PAIR_TARGET) <= 0.001
    assert bounds.bound_text(300, failing=True) == "-"  # a failing cell has no clean bound: the failure was seen


def recorder_with(counts: dict[str, tuple[int, list[str]]]) -> Recorder:
    recorder = Recorder()
    recorder.start(0.0, {})
    for scenario, (requests, names) in counts.items():
        for index in range(requests):
            recorder.on_request(1.0, context={"scenario": scenario})
            recorder.tally(names if index == 0 else [], scenario)
    return recorder


def test_a_cell_is_settled_by_a_downstream_leak_or_the_target_only() -> None:
    downstream = failure_name(DOWNSTREAM, "user_id", LEAK)
    at_entry = failure_name(ENTRY, "user_id", LEAK)
    lost = failure_name(DOWNSTREAM, "user_id", LOST)
    assert recorder_with({"get": (3, [])}).settled(3, ("get",))
    assert not recorder_with({"get": (2, [])}).settled(3, ("get",))
    assert not recorder_with({"get": (3, [])}).settled(3, ("get", "post"))  # a scenario not seen yet is not settled
    assert recorder_with({"get": (1, [downstream]), "post": (3, [])}).settled(3, ("get", "post"))
    # an entry-only leak could still become a downstream one (stale -> leaks); a lost value could become a leak
    assert not recorder_with({"get": (1, [at_entry])}).settled(3, ("get",))
    assert not recorder_with({"get": (1, [lost])}).settled(3, ("get",))


def test_a_run_with_a_total_is_settled_once_its_cells_reach_it_together_or_one_leaks() -> None:
    downstream = failure_name(DOWNSTREAM, "user_id", LEAK)
    both = ("get", "post")
    assert not recorder_with({"get": (5, []), "post": (3, [])}).settled(3, both, total=10)
    assert recorder_with({"get": (7, []), "post": (3, [])}).settled(3, both, total=10)
    assert not recorder_with({"get": (9, []), "post": (1, [])}).settled(3, both, total=10)  # a cell short of its own
    assert recorder_with({"get": (3, []), "post": (1, [downstream])}).settled(3, both, total=10)  # the pair is decided
    # any failure, even one that does not settle its own cell, means the pair is not clean: it needs no total
    lost = failure_name(DOWNSTREAM, "user_id", LOST)
    assert recorder_with({"get": (3, []), "post": (3, [lost])}).settled(3, both, total=10)


def test_a_clean_cell_stops_sending_once_it_and_its_run_have_what_they_need() -> None:
    downstream = failure_name(DOWNSTREAM, "user_id", LEAK)
    both = ("get", "post")
    recorder = recorder_with({"get": (3, []), "post": (1, [])})
    assert recorder.done_sending("get", 3, both) and not recorder.done_sending("post", 3, both)
    assert not recorder.done_sending("get", 3, both, total=10)  # the run still needs requests: the cheap cell sends
    assert recorder_with({"get": (9, []), "post": (1, [])}).done_sending("get", 3, both, total=10)
    # a leaking cell keeps sending: its later requests are the evidence (how often, whose data)
    leaking = recorder_with({"get": (5, [downstream]), "post": (3, [])})
    assert not leaking.done_sending("get", 3, both) and leaking.done_sending("post", 3, both, total=100)


def test_the_hunt_plan_stops_at_the_target_and_prints_its_estimate() -> None:
    name = registry.reference()
    specs = list(sweep.plan(sweep.QUICK, (name,), scenarios.SCENARIOS))
    assert len(specs) == len(serverconfig.LEAK_HUNT)
    assert {(s.stop_at, s.duration_s, s.scenario) for s in specs} == {(HUNT_STOP_AT, QUICK_DURATION_S, scenarios.EACH)}
    assert HUNT_STOP_AT == bounds.CLEAN_CELL_TARGET
    last = hunt.dry_run_lines(specs)[-1]
    assert f"{len(specs)} runs" in last and f"~{hunt.estimate_s(specs) / 60:.1f} min" in last
    other = list(sweep.plan(sweep.FULL, (name,), (scenarios.GET,)))
    assert {s.stop_at for s in other} == {0}  # only the hunt stops early


def settled_run(variant: str) -> dict:
    spec = bounded_run.RunSpec(variant, scenarios.EACH, 10, QUICK_DURATION_S, 0.0, tag="test", stop_at=HUNT_STOP_AT)
    with exclusive_run():
        result = bounded_run.execute(spec)
    assert result["processes"]["left_behind"] == []
    assert not any(psutil.pid_exists(pid) and bounded_run._alive(pid) for pid in result["processes"]["started"])
    return result


def test_a_clean_run_stops_once_every_cell_has_the_target() -> None:
    result = settled_run("explicit")  # correct on uvloop-httptools: no failure in any scenario
    assert result["timing"]["stopped_early"]
    cells = bounded_run.cells_of(result)
    assert {cell["run"]["scenario"] for cell in cells} == set(scenarios.SCENARIOS)
    assert all(cell["failures_total"]["requests"] >= HUNT_STOP_AT for cell in cells)
    assert all(cell["failures_total"]["failures"] == {} for cell in cells)
    # and no cell ran longer than it needed: its users stopped at the target, each with one request (or batch) in flight
    most = HUNT_STOP_AT + QUICK_USERS_PER_SCENARIO * scenarios.PIPELINE_DEPTH
    assert all(cell["failures_total"]["requests"] <= most for cell in cells), [c["requests"] for c in cells]


def test_the_negative_control_stops_at_its_first_leaks() -> None:
    result = settled_run("global_state")
    assert result["timing"]["stopped_early"]
    cells = bounded_run.cells_of(result)
    assert all(cell["failures_total"][LEAK] > 0 for cell in cells)  # every scenario caught it
    assert any(cell["failures_total"]["requests"] < HUNT_STOP_AT for cell in cells)  # and stopped before the target


def test_the_cells_table_gives_each_clean_cell_its_bound_and_marks_those_under_the_target() -> None:
    from scripts.report import report

    def cell(variant: str, requests: int, leak: int) -> dict:
        counts = {"requests": requests, "leak": leak, "lost": 0, "other": 0}
        return {"variant": variant, "scenario": scenarios.GET, "server": serverconfig.DEFAULT.label} | counts

    grid = [cell("explicit", 299, 0), cell("global_state", 40, 12), cell("request_state", 3_000, 0)]
    lines = report.cells_markdown({"leak_grid": grid}).splitlines()
    row = {name: next(line for line in lines if f"`{name}`" in line) for name in ("explicit", "global_state")}
    assert row["explicit"].endswith(f"| {bounds.bound_text(299)} * |")  # clean, under the 300 target
    assert row["global_state"].endswith("| - |")  # it failed: no clean bound
    assert any(line.endswith(f"| {bounds.bound_text(3_000)} |") for line in lines)


def test_every_pair_the_hunt_may_call_correct_is_planned_to_reach_its_target() -> None:
    """A clean (approach, server kind) pair gets CORRECT_PAIR_TARGET requests over its cells, whatever its number of
    configurations and fronts: daphne, hunted on one configuration, gets more per run than uvicorn's many."""
    for name in registry.BY_NAME:
        specs = sweep.hunt_plan((name,))
        planned: dict[str, int] = {}
        for spec in specs:
            assert spec.stop_at == HUNT_STOP_AT  # every cell its own target
            run_needs = max(spec.stop_at * len(scenarios.SCENARIOS), spec.stop_total)
            planned[spec.config.kind] = planned.get(spec.config.kind, 0) + run_needs
        assert min(planned.values()) >= bounds.CORRECT_PAIR_TARGET, (name, planned)
        by_kind = {spec.config.kind: spec.stop_total for spec in specs}
        assert by_kind["uvicorn"] == 0  # enough configurations already: no run longer than it needs
        if sum(spec.config.kind == "daphne" for spec in specs) == 1:  # hunted directly only: one run carries it all
            assert by_kind["daphne"] == bounds.CORRECT_PAIR_TARGET


def hunt_cell(variant: str, front: str, scenario: str, start: float, total_s: float, early: bool = True) -> dict:
    run = {"variant": variant, "tag": sweep.QUICK, "scenario": scenario, "config": {"label": "asyncio-h11"}}
    return {
        "run": run | {"front": {"label": front}},
        "window": {"start": start},
        "timing": {"total_s": total_s, "stopped_early": early},
        "environment": {"created_utc": f"2026-01-01T00:00:{int(start):02d}+00:00"},
    }


def test_the_hunt_time_counts_each_run_once_and_the_direct_grid_apart(tmp_path) -> None:
    from scripts.load import loadstats
    from scripts.report import report

    cells = [hunt_cell("explicit", "direct", scenario, 1.0, 2.0) for scenario in scenarios.SCENARIOS]
    cells += [hunt_cell("global_state", "direct", scenarios.GET, 3.0, 0.5)]
    cells += [hunt_cell("explicit", "nginx", scenarios.GET, 5.0, 20.5, early=False)]
    other = hunt_cell("explicit", "direct", scenarios.GET, 7.0, 9.0) | {"run": {"tag": "full", "variant": "x"}}
    summary = loadstats.hunt_time([(str(i), cell) for i, cell in enumerate([*cells, other])], tmp_path)
    assert summary["direct"] | {"first_utc": None, "last_utc": None} == {
        "runs": 2,  # five scenario cells of one run are one run
        "variants": 2,
        "configs": 1,
        "seconds": 2.5,
        "median_run_s": 1.25,
        "capped": 0,
        "first_utc": None,
        "last_utc": None,
    }
    assert (summary["proxied"]["runs"], summary["proxied"]["capped"], summary["record"]) == (1, 1, None)
    lines = report._hunt_time_lines(summary)
    assert any(line.startswith("- Direct: 2 runs (2 variants × 1 configurations") for line in lines)
    assert any("1 at the time bound" in line for line in lines)
    assert report._hunt_time_lines(None) == []


def test_a_partial_hunt_records_apart_and_replaces_only_its_own_files(tmp_path, monkeypatch) -> None:
    """`ctxbench variant` and a filtered sweep keep the whole hunt's record (hunt/run.json) and the others' files."""

    def fake_execute(spec: bounded_run.RunSpec) -> dict:
        run = {"variant": spec.variant, "scenario": spec.scenario, "users": spec.users, "tag": spec.tag}
        run |= {"config": {"label": spec.config.label}, "front": {"label": spec.front.label}}
        timing = {"total_s": 1.0, "server_start_s": 0.4, "until_users_s": 0.5, "load_s": 0.5, "stop_s": 0.0}
        return {"run": run, "timing": timing | {"stopped_early": True}, "failures_total": {"requests": 300, "leak": 0}}

    monkeypatch.setattr(bounded_run, "execute", fake_execute)
    monkeypatch.setattr(hunt, "describe", lambda parameters: {"created_utc": "now", "parameters": parameters})
    whole_record = tmp_path / hunt.RECORD
    whole_record.parent.mkdir()
    whole_record.write_text('{"whole": true}')
    specs = [s for s in sweep.hunt_plan(("explicit",)) if s.front.is_direct][:2]
    old = [bounded_run.save(fake_execute(spec), tmp_path) for spec in specs]
    other = bounded_run.save(fake_execute(dataclasses.replace(specs[0], variant="baseline")), tmp_path)
    assert hunt.replace_all(specs, False, tmp_path, hunt.PARTIAL_RECORD) == 0
    assert whole_record.read_text() == '{"whole": true}'
    assert json.loads((tmp_path / hunt.PARTIAL_RECORD).read_text())["plan"]["runs"] == 2
    assert not any(path.exists() for path in old) and other.exists()  # its own previous files only
    assert len(list(tmp_path.glob("*.json"))) == 3
