"""One variant's row: `ctxbench variant`, `bench --variant` and the gate's merge replace that variant's results only."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyperf
import pytest

from apps.harness import registry
from microbench import bm_paired
from scripts import cli
from scripts.bench import bench, verify
from scripts.bench import stats as benchstats
from scripts.common.environment import ROOT
from scripts.common.results import BENCH_DIR
from scripts.load import fronts
from scripts.load import servers as serverconfig

SUBJECT = "explicit"


@pytest.mark.parametrize("argv", [["variant", "nope"], ["bench", "--variant", "nope"], ["sweep", "--variant", "nope"]])
def test_an_unknown_variant_is_bad_usage(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "scripts.cli", *argv], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "unknown variant" in result.stderr


def test_bench_variant_runs_only_its_own_jobs_and_replaces_only_its_files(tmp_path: Path) -> None:
    mode = bench.MODES["smoke"]
    jobs = bench.jobs(mode, tmp_path, (SUBJECT,))
    assert [(job.script, job.output.name) for job in jobs] == [
        ("bm_apps.py", f"app_{SUBJECT}.json"),
        (bench.PAIRED_SCRIPT, f"{benchstats.VARIANT_PAIRED_PREFIX}{SUBJECT}.json"),
    ]
    assert ["--variant", SUBJECT] == jobs[1].command(mode, None, 0)[-2:]
    for name in (f"app_{SUBJECT}.json", "app_baseline.json", benchstats.PAIRED_NAME, "depth_basehttp.json"):
        (tmp_path / name).write_text("{}")
    replaced = bench.replaced_files(mode, (SUBJECT,))
    matched = {path.name for path in tmp_path.iterdir() if any(fnmatch.fnmatch(path.name, p) for p in replaced)}
    assert matched == {f"app_{SUBJECT}.json"}
    everything = bench.replaced_files(mode, ())
    assert all(any(fnmatch.fnmatch(path.name, p) for p in everything) for path in tmp_path.iterdir())


def test_the_gate_of_one_variant_keeps_the_others_verdicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "verify" / "verdicts.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"variants": {"baseline": {"conforms": True, "failures": {}, "problems": []}}}))
    monkeypatch.setattr(verify, "measure", lambda variant: {})
    monkeypatch.setattr(verify.conformance, "scenario_problems", lambda variant, counts: [])
    assert verify.verify([registry.get(SUBJECT)], tmp_path, merge=True) == []
    assert set(json.loads(path.read_text())["variants"]) == {"baseline", SUBJECT}
    verify.verify([registry.get(SUBJECT)], tmp_path)  # without merge: that run's variants only
    assert set(json.loads(path.read_text())["variants"]) == {SUBJECT}


def test_one_variants_paired_blocks_pair_with_their_own_baseline(tmp_path: Path) -> None:
    output = benchstats.variant_paired_path(tmp_path, SUBJECT)
    command = [sys.executable, str(ROOT / "microbench" / "bm_paired.py"), "-o", str(output), "--blocks", "2"]
    command += ["--block-requests", "3", "--processes", "1", "--variant", SUBJECT]
    subprocess.run(command, cwd=ROOT, check=True)
    suite = pyperf.BenchmarkSuite.load(str(output))
    apps = {bench.get_name().split("_", 2)[2] for bench in suite.get_benchmarks()}
    assert apps == {SUBJECT, registry.reference(), benchstats.AA_APP}  # no depth apps, no other variant
    assert set(benchstats.load_variant_paired(tmp_path)) == {SUBJECT}
    for method in bm_paired.METHODS:
        assert len(benchstats.block_ratios(suite, method, SUBJECT, registry.reference())) == 2
    # its independent runs are compared with nothing: baseline's file is another run's, and CPU time moves with the host
    for app in (SUBJECT, registry.reference()):
        shutil.copy(benchstats.app_path(BENCH_DIR, app), benchstats.app_path(tmp_path, app))
    rows = [row for row in benchstats.summarize(tmp_path, write=False)["apps"] if row["variant"] == SUBJECT]
    assert rows and all(row["vs_baseline"] is None and row["run"] == "own" for row in rows)
    assert all(row["paired_vs_baseline"]["source"] == "alone" for row in rows)
    output.unlink()
    rows = [row for row in benchstats.summarize(tmp_path, write=False)["apps"] if row["variant"] == SUBJECT]
    assert all(row["vs_baseline"] is not None and "run" not in row for row in rows)


def test_the_variant_command_is_registered_and_its_dry_run_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.COMMANDS["variant"] == "report"
    assert cli.main(["variant", SUBJECT, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "step: leak hunt" in out and "step: gate and paired CPU bench" in out
    proxied = (
        len(serverconfig.FRONTED) * len(fronts.PROXIES) if SUBJECT in registry.tagged(registry.BEHIND_PROXY) else 0
    )
    assert f"{len(serverconfig.LEAK_HUNT) + proxied} runs" in out


def test_one_variants_instruction_count_replaces_its_own_file_only(tmp_path: Path) -> None:
    """Its file holds its run's baseline and A/A: the reference run's baseline, A/A and depth files stay."""
    names = [f"instructions_{app}.json" for app in (SUBJECT, "baseline", "baseline_aa", "depth_basehttp")]
    for name in names:
        (tmp_path / name).write_text("{}")
    replaced = bench.replaced_files(bench.MODES["instructions"], (SUBJECT,))
    matched = {path.name for path in tmp_path.iterdir() if any(fnmatch.fnmatch(path.name, p) for p in replaced)}
    assert matched == {f"instructions_{SUBJECT}.json"}
