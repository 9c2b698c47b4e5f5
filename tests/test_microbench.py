"""The bench command in smoke mode end to end: files appear, parse with pyperf, prove their app; no timing asserted."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pyperf
import pytest

from apps.harness import registry, traffic
from microbench import bm_apps, bm_instructions
from scripts import cli
from scripts.bench import bench, bench_charts, verify
from scripts.bench import stats as benchstats
from scripts.common.lock import exclusive_run

pytestmark = pytest.mark.timeout(300)  # the smoke bench of every variant (after the machine lock, if held)


# The gate proper (`verify` of every variant at the full request count, ~2-3 minutes here) measures exactly what
# tests/test_conformance.py asserts for every variant and scenario, so the smoke bench gates on a part of the registry
# (the baseline and the negative control that must be caught) through the same code: CI stays under its 15 minutes.
GATED_IN_SMOKE = ("baseline", "global_state")


def gate_on_part_of_the_registry(results_dir: Path, only: tuple[str, ...] = ()) -> list[str]:
    return verify.verify([registry.get(name) for name in GATED_IN_SMOKE], results_dir.parent)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    results = tmp_path_factory.mktemp("root") / "bench"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench, "gate", gate_on_part_of_the_registry)
        assert cli.main(["bench", "--mode", "smoke", "--results-dir", str(results)]) == 0
    return results


def test_the_gate_ran_first_and_kept_its_verdicts(smoke: Path) -> None:
    verdicts = json.loads((smoke.parent / "verify" / "verdicts.json").read_text())
    assert set(verdicts["variants"]) == set(GATED_IN_SMOKE)
    assert all(found["conforms"] for found in verdicts["variants"].values())
    assert verdicts["variants"]["global_state"]["failures"][registry.CONCURRENT]  # the control was caught leaking


def test_a_gate_problem_stops_the_bench_before_timing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "gate", lambda results_dir, only=(): ["explicit: concurrent: unexpected leak"])
    assert cli.main(["bench", "--mode", "smoke", "--results-dir", str(tmp_path)]) == 1
    assert not list(tmp_path.glob("app_*.json")) and not (tmp_path / benchstats.RUN_NAME).exists()


def test_every_variant_file_parses_and_proves_its_app(smoke: Path) -> None:
    for variant in registry.VARIANTS:
        suite = pyperf.BenchmarkSuite.load(str(benchstats.app_path(smoke, variant.name)))
        assert sorted(suite.get_benchmark_names()) == ["app_get", "app_post"]
        for benchmark in suite.get_benchmarks():
            runs = [run for run in benchmark.get_runs() if run.values]
            assert runs
            assert {run.get_metadata()["ctxbench_app"] for run in runs} == {variant.name}
            assert benchmark.get_metadata()["timer"] == "time.process_time"
            assert benchmark.get_metadata()["fastapi_version"]


def test_paired_file_parses_and_pairs_every_app(smoke: Path) -> None:
    suite = pyperf.BenchmarkSuite.load(str(benchstats.paired_path(smoke)))
    for variant in registry.VARIANTS:
        for method in benchstats.METHODS:
            bench = suite.get_benchmark(benchstats.paired_name(method, variant.name))
            assert {run.get_metadata()["ctxbench_app"] for run in bench.get_runs()} == {variant.name}
            assert len(benchstats.block_ratios(suite, method, variant.name, "baseline")) == bench.get_nvalue()


def test_pyperf_cli_reads_and_compares_the_files(smoke: Path) -> None:
    baseline = benchstats.app_path(smoke, "baseline")
    subject = benchstats.app_path(smoke, "contextvar_asgi")
    for command in (["stats", str(subject)], ["compare_to", str(baseline), str(subject), "--table"]):
        result = subprocess.run([sys.executable, "-m", "pyperf", *command], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert "app_get" in result.stdout or "not significant" in result.stdout


def test_summary_and_charts(smoke: Path) -> None:
    summary = json.loads((smoke / benchstats.SUMMARY_NAME).read_text())
    assert summary["schema"] == benchstats.SCHEMA
    assert {(row["variant"], row["method"]) for row in summary["apps"]} == {
        (variant.name, method) for variant in registry.VARIANTS for method in benchstats.METHODS
    }
    designs = {(item["design"], item["method"]) for item in summary["aa"]}
    assert designs == {(design, method) for design in ("independent", "paired") for method in benchstats.METHODS}
    assert {row["name"] for row in summary["primitives"]} >= {"contextvar_get", "state_set_get"}
    assert {(row["kind"], row["depth"]) for row in summary["depth"]} >= {("pure_asgi", 5), ("basehttp", 5)}
    assert set(summary["depth_per_layer_us_paired"]) == {"pure_asgi", "basehttp"}
    assert summary["environment"]["parameters"]["mode"] == "smoke"
    for name in (bench_charts.APPS_CHART, bench_charts.PRIMITIVES_CHART, bench_charts.DEPTH_CHART):
        assert (smoke / "charts" / name).read_bytes().startswith(b"\x89PNG")


def test_summary_refuses_a_worker_that_timed_another_app(smoke: Path, tmp_path: Path) -> None:
    path = benchstats.app_path(smoke, "contextvar_asgi")
    data = json.loads(path.read_text())
    data["benchmarks"][0]["runs"][-1].setdefault("metadata", {})["ctxbench_app"] = "baseline"
    (tmp_path / path.name).write_text(json.dumps(data))
    with pytest.raises(benchstats.WrongApp):
        benchstats.summarize(tmp_path, write=False)


def test_a_variant_that_does_not_do_its_work_is_not_timed() -> None:
    spec = bm_apps.request_spec(traffic.GET)
    baseline_app = registry.get("baseline").load()
    with pytest.raises(bm_apps.AppDidNotWork):
        bm_apps.verify(registry.get("contextvar_asgi"), baseline_app, spec)
    assert bm_apps.verify(registry.get("baseline"), baseline_app, spec)["ctxbench_app"] == "baseline"


def test_verdict_threshold() -> None:
    assert benchstats.verdict_of(1.0, 0.1) == ("not significant", benchstats.MIN_EFFECT_PCT)
    assert benchstats.verdict_of(10.0, 0.5)[0] == "slower"
    assert benchstats.verdict_of(-10.0, 0.5)[0] == "faster"
    assert benchstats.verdict_of(10.0, 6.0) == ("not significant", benchstats.Z * 6.0)
    assert benchstats.verdict_of(50.0, math.inf)[0] == "not significant"  # one worker a side: no evidence


NO_VALGRIND = "valgrind not installed: instruction counts need callgrind"


@pytest.mark.skipif(shutil.which("valgrind") is None, reason=NO_VALGRIND)
def test_instruction_counts_smoke(tmp_path: Path) -> None:
    """bm_instructions.py end to end with one request per segment: pyperf files per app, read by the summary."""
    command = [sys.executable, str(Path(bm_instructions.__file__)), "--output-dir", str(tmp_path)]
    command += ["--requests", "1", "--blocks", "1", "--processes", "1", "--warmup", "1", "--variant", "contextvar_asgi"]
    with exclusive_run():  # callgrind runs Python ~100x slower: a core for about half a minute
        result = subprocess.run([*command, "--depth"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    suite = pyperf.BenchmarkSuite.load(str(tmp_path / "instructions_contextvar_asgi.json"))
    own = [bm_instructions.bench_name(method) for method in benchstats.METHODS]
    references = [bm_instructions.same_run_name(a, m) for a in ("baseline", "baseline_aa") for m in benchstats.METHODS]
    assert sorted(suite.get_benchmark_names()) == sorted([*own, *references])  # its run's references inside
    assert suite.get_benchmark("instructions_get").get_metadata()["unit"] == "integer"
    counted = benchstats.summarize_instructions(tmp_path, [])
    assert {(row["variant"], row["method"]) for row in counted["apps"]} == {
        (variant, method) for variant in ("baseline", "contextvar_asgi") for method in benchstats.METHODS
    }
    assert {item["method"] for item in counted["aa"]} == set(benchstats.METHODS)
    assert set(counted["depth_per_layer"]) == {"pure_asgi", "basehttp"}
    # without the reference run's files (as `bench --variant` leaves them), the variant is still compared within its run
    for path in tmp_path.glob("instructions_baseline*.json"):
        path.unlink()
    alone = benchstats.summarize_instructions(tmp_path, [])
    rows = [row for row in alone["apps"] if row["variant"] == "contextvar_asgi"]
    assert {row["run"] for row in rows} == {"own"}
    assert all(row["vs_baseline"]["reference"] == "baseline" for row in rows)
    assert alone["fix"] == [] and alone["targets"] == []  # never across runs
