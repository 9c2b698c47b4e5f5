"""The bench command in smoke mode end to end: files appear, parse with pyperf, prove their app; no timing asserted."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pyperf
import pytest

from apps.harness import registry, traffic
from microbench import bm_apps, bm_depth, bm_instructions
from scripts import cli
from scripts.bench import bench, bench_charts, verify
from scripts.bench import stats as benchstats
from scripts.common.lock import exclusive_run

pytestmark = pytest.mark.timeout(300)  # the smoke bench and callgrind wait for the machine lock, if it is held


# The gate proper (`verify` of every variant at the full request count, ~2-3 minutes here) measures exactly what
# tests/test_conformance.py asserts for every variant and scenario, so the smoke bench gates on a part of the registry
# (the baseline and the negative control that must be caught) through the same code: CI stays under its 15 minutes.
GATED_IN_SMOKE = ("baseline", "global_state")


def gate_on_part_of_the_registry(results_dir: Path, only: tuple[str, ...] = ()) -> list[str]:
    return verify.verify([registry.get(name) for name in GATED_IN_SMOKE], results_dir.parent)


# Each bm_apps job is a pyperf manager and a worker per method, ~1.5 s of interpreter and FastAPI start-up whatever
# the variant: all 19 cost ~28 s. The code path is the same for every variant, and every variant's app is still
# loaded and checked by the smoke bench's paired job (test_paired_file_parses_and_pairs_every_app), so the smoke bench
# here times alone the reference (with its A/A series) and the subject the pyperf CLI and WrongApp tests read.
TIMED_ALONE_IN_SMOKE = ("baseline", "contextvar_asgi")
APPS_SCRIPT = "bm_apps.py"
all_jobs = bench.jobs


def app_variant(job: bench.Job) -> str:
    return job.options[job.options.index("--variant") + 1]


def jobs_timing_part_of_the_registry(mode: bench.Mode, results_dir: Path, only: tuple[str, ...] = ()) -> list:
    found = all_jobs(mode, results_dir, only)
    return [job for job in found if job.script != APPS_SCRIPT or app_variant(job) in TIMED_ALONE_IN_SMOKE]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    results = tmp_path_factory.mktemp("root") / "bench"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench, "gate", gate_on_part_of_the_registry)
        patch.setattr(bench, "jobs", jobs_timing_part_of_the_registry)
        assert cli.main(["bench", "--mode", "smoke", "--results-dir", str(results)]) == 0
    return results


def test_a_full_smoke_bench_times_every_variant_alone(tmp_path: Path) -> None:
    """What the fixture leaves out: the unpatched job list has a bm_apps job per variant, and baseline's A/A."""
    found = [job for job in bench.jobs(bench.MODES["smoke"], tmp_path) if job.script == APPS_SCRIPT]
    assert sorted(job.output.name for job in found) == sorted(
        [benchstats.app_path(tmp_path, variant.name).name for variant in registry.VARIANTS]
        + [benchstats.app_path(tmp_path, benchstats.BASELINE, benchstats.AA_SERIES).name]
    )


def test_the_gate_ran_first_and_kept_its_verdicts(smoke: Path) -> None:
    verdicts = json.loads((smoke.parent / "verify" / "verdicts.json").read_text())
    assert set(verdicts["variants"]) == set(GATED_IN_SMOKE)
    assert all(found["conforms"] for found in verdicts["variants"].values())
    assert verdicts["variants"]["global_state"]["failures"][registry.CONCURRENT]  # the control was caught leaking


def test_a_gate_problem_stops_the_bench_before_timing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "gate", lambda results_dir, only=(): ["explicit: concurrent: unexpected leak"])
    assert cli.main(["bench", "--mode", "smoke", "--results-dir", str(tmp_path)]) == 1
    assert not list(tmp_path.glob("app_*.json")) and not (tmp_path / benchstats.RUN_NAME).exists()


def test_every_timed_variant_file_parses_and_proves_its_app(smoke: Path) -> None:
    assert {path.name for path in smoke.glob("app_*.json")} == {
        *(benchstats.app_path(smoke, name).name for name in TIMED_ALONE_IN_SMOKE),
        benchstats.app_path(smoke, benchstats.BASELINE, benchstats.AA_SERIES).name,
    }
    for variant in map(registry.get, TIMED_ALONE_IN_SMOKE):
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
        (variant, method) for variant in TIMED_ALONE_IN_SMOKE for method in benchstats.METHODS
    }
    paired_rows = [row for row in summary["apps"] if row["variant"] != benchstats.BASELINE]
    assert all(row["paired_vs_baseline"]["source"] == "full run" for row in paired_rows)
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


# Each callgrind process costs ~20 s here whatever it loads (importing FastAPI under callgrind is ~17 s of it), two at
# a time (PARALLEL): baseline with its A/A twin is one round (18.5 s); a variant and the depth apps made it two (45 s).
# So callgrind counts only the reference and its A/A twin; the rest of a `--variant ... --depth` run (each group's
# worker, the files with the run's references inside, their summary) is checked below on the same code, natively.
@pytest.mark.skipif(shutil.which("valgrind") is None, reason=NO_VALGRIND)
def test_instruction_counts_smoke(tmp_path: Path) -> None:
    """bm_instructions.py end to end under callgrind with one request per segment: a count per app, and the A/A."""
    command = [sys.executable, str(Path(bm_instructions.__file__)), "--output-dir", str(tmp_path)]
    command += ["--requests", "1", "--blocks", "1", "--processes", "1", "--warmup", "1", "--variant", "baseline"]
    with exclusive_run():  # callgrind runs Python ~100x slower: both cores for about half a minute
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert {path.name for path in tmp_path.glob("*.json")} == {
        "instructions_baseline.json",
        "instructions_baseline_aa.json",
    }
    for app in ("baseline", bm_instructions.AA_NAME):
        suite = pyperf.BenchmarkSuite.load(str(bm_instructions.app_file(tmp_path, app)))
        assert sorted(suite.get_benchmark_names()) == sorted(bm_instructions.bench_name(m) for m in benchstats.METHODS)
        for benchmark in suite.get_benchmarks():
            assert benchmark.get_metadata()["unit"] == "integer"
            assert benchmark.get_metadata()["ctxbench_app"] == "baseline"  # the worker checked the app it counted
            # a request is ~1.5 M instructions: a dump that missed the segment (start-up, a lone marker) is far off
            assert all(10_000 < value < 1_000_000_000 for value in benchstats.instruction_values(benchmark))
    counted = benchstats.summarize_instructions(tmp_path, [])
    assert {(row["variant"], row["method"]) for row in counted["apps"]} == {("baseline", m) for m in benchstats.METHODS}
    assert {item["method"] for item in counted["aa"]} == set(benchstats.METHODS)  # the A/A comparison, per method
    assert all(item["subject"] == bm_instructions.AA_NAME for item in counted["aa"])


def counted_without_callgrind(group: str, seed: int, counts: dict[str, int]) -> tuple[list, dict]:
    """One group's worker (its apps loaded and checked, its segments run) natively; what measure_process returns,
    with a made-up count for each segment (callgrind's own part is counted above)."""
    apps = bm_instructions.loaded_apps(group)
    labels = asyncio.run(bm_instructions.segments(apps, requests=1, blocks=1, seed=seed, warmup=1))
    segments = [json.loads(label) for label in labels if label != bm_instructions.DISCARD]
    assert sorted((name, method) for name, method, _ in segments) == sorted(apps)  # every app, once per block
    values = [(name, method, block, float(counts[name])) for name, method, block in segments]
    return values, {f"{name} {method}": proof for (name, method), (_, proof) in apps.items()}


def test_instruction_files_of_a_variant_run_hold_its_references(tmp_path: Path) -> None:
    """`bm_instructions.py --variant contextvar_asgi --depth`: a pyperf file per app, the variant's with its run's
    references inside, read by the summary."""
    counts = {"baseline": 1_000_000, bm_instructions.AA_NAME: 1_000_000, "contextvar_asgi": 1_100_000}
    counts |= {
        f"depth-{kind}-{depth}": 500_000 + layer * depth
        for kind, layer in (("pure_asgi", 40_000), ("basehttp", 90_000))
        for depth in bm_depth.DEPTHS
    }
    args = argparse.Namespace(output_dir=tmp_path, requests=1, seed=0, variant=["contextvar_asgi"], append=False)
    groups = bm_instructions.groups(args.variant, depth=True)
    assert groups == ["baseline", "contextvar_asgi", bm_instructions.AA_NAME, bm_instructions.DEPTH]
    bm_instructions.write_suites([counted_without_callgrind(g, i, counts) for i, g in enumerate(groups)], args)
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
    assert counted["depth_per_layer"] == pytest.approx({"pure_asgi": 40_000, "basehttp": 90_000})
    # without the reference run's files (as `bench --variant` leaves them), the variant is still compared within its run
    for path in tmp_path.glob("instructions_baseline*.json"):
        path.unlink()
    alone = benchstats.summarize_instructions(tmp_path, [])
    rows = [row for row in alone["apps"] if row["variant"] == "contextvar_asgi"]
    assert {row["run"] for row in rows} == {"own"}
    assert all(row["vs_baseline"]["reference"] == "baseline" for row in rows)
    assert all(row["vs_baseline"]["added_pct"] == pytest.approx(10) for row in rows)
    assert alone["fix"] == [] and alone["targets"] == []  # never across runs
