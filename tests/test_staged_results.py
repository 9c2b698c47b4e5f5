"""A run that fails or is interrupted never destroys the results it was meant to replace (issue 25).

Every command that writes results runs in-process on a copy of the committed results/, its heavy parts (servers,
locust, pyperf, the in-process measurements) replaced by fakes that write a file and then fail: at the start, in the
middle (a failing job, Ctrl-C) and at the end (an error while writing or publishing). Afterwards every file is byte for
byte as before and the report built from the directory is the same; a run that succeeds does change them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from apps.harness import registry
from scripts import cli
from scripts.bench import bench as benchrun
from scripts.bench import stats as benchstats
from scripts.bench import verify as gate
from scripts.common import lock, staged
from scripts.common import results as resultfiles
from scripts.load import bounded_run, loadstats, sweep
from scripts.load import load as single
from scripts.matrix import matrix
from scripts.report import report
from scripts.soak import soak as soakrun
from scripts.versions import versions
from scripts.versions.stacks import STACKS

pytestmark = pytest.mark.timeout(60)
PAIR = "explicit:uvloop-httptools"


@pytest.fixture(autouse=True)
def own_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """These commands run fakes, never a server: they take a lock of their own. With the machine's lock, a second
    suite running beside this one (its load tests hold that lock for minutes) made three of them wait past their
    60 s (seen in a fresh clone beside another `make test`)."""
    monkeypatch.setattr(lock, "LOCK_PATH", tmp_path / "run.lock")


def ends(call: Callable[[], object], error: type[BaseException]) -> None:
    """The command fails with `error`; Ctrl-C (or SIGTERM) ends it with 130 and one line (scripts.cli.main)."""
    if issubclass(error, KeyboardInterrupt):
        assert call() == 130
        return
    with pytest.raises(error):
        call()


class Injected(RuntimeError):
    """The fault a fake raises."""


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine") / "results"
    shutil.copytree(resultfiles.RESULTS, root, ignore=shutil.ignore_patterns(f"{staged.PREFIX}*"))
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the committed results; no command waits for the machine lock (nothing here measures anything)."""
    for module in (benchrun, single, sweep, soakrun):
        monkeypatch.setattr(module, "exclusive_run", contextlib.nullcontext)
    return Path(shutil.copytree(pristine, tmp_path / "results"))


def fingerprint(root: Path) -> dict[str, str]:
    """Every file under root (dot-entries included: no staging may be left) -> its SHA-256."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    } | {str(path.relative_to(root)): "dir" for path in root.rglob("*") if path.is_dir()}


def reader(root: Path) -> str:
    """What readers see: the report and its detail pages, and which load files the load summary would read."""
    runs, side = loadstats.load_results(root / "load")
    sources = report.load_sources(root)
    pages = report.detail_pages(root, sources, report.decision.decide(sources))
    text = report.render(root) + "\n".join(line for sections in pages.values() for line in sections)
    return text + "\n".join(name for name, _ in runs) + f"\nside rounds {len(side)}"


@pytest.fixture
def unchanged(root: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., None]:
    """Call after the failed run: nothing changed, no staging left, and one line said what was kept (from which run:
    the commit of `kept`, when given)."""
    before, seen = fingerprint(root), reader(root)

    def check(kept: str | None = None) -> None:
        assert fingerprint(root) == before
        assert reader(root) == seen
        assert not list(root.parent.glob(f"{staged.PREFIX}*")) and not list(root.glob(f"*/{staged.PREFIX}*"))
        err = capsys.readouterr().err
        assert re.search(r"previous results kept \(from [0-9a-f]{10}", err), err
        if kept:
            commit = resultfiles.read_json(root / kept)["environment"]["git"]["commit"][:10]
            assert f"previous results kept (from {commit}" in err, err

    return check


def fake_environment() -> dict:
    return {"git": {"commit": "f" * 40, "dirty": False}, "created_utc": "2030-01-01T00:00:00+00:00"}


# bench (timed) and its instruction counts


def fake_jobs(fail_at: int | None = None, error: type[BaseException] = Injected) -> Callable:
    calls: list[list[str]] = []

    def run(command: list[str], **_: object) -> subprocess.CompletedProcess:
        calls.append(command)
        option = "--append" if "--append" in command else "-o" if "-o" in command else "--output-dir"
        target = Path(command[command.index(option) + 1])
        target = target / "instructions_baseline.json" if option == "--output-dir" else target
        target.write_text('{"fake": "partial pyperf output"}')
        if fail_at is not None and len(calls) == fail_at:
            if error is Injected:
                return subprocess.CompletedProcess(command, 1, "", "job failed")
            raise error()
        return subprocess.CompletedProcess(command, 0, "", "")

    return run


def bench(root: Path, *extra: str) -> int:
    return cli.main(["bench", "--mode", "smoke", "--results-dir", str(root / "bench"), *extra])


@pytest.fixture
def quiet_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchrun, "gate", lambda staging, only=(): [])
    monkeypatch.setattr(benchrun.bench_charts, "draw_all", lambda summary, charts_dir: [])
    monkeypatch.setattr(benchrun.benchstats, "table", lambda summary: "")


def test_bench_with_cpus_this_machine_lacks_fails_before_touching_anything(root: Path, capsys) -> None:
    """The issue's example: a typo in --affinity is bad usage (exit 2, one line), and no file is lost."""
    before = fingerprint(root)
    with pytest.raises(SystemExit) as exited:
        bench(root, "--affinity", "99,100")
    assert exited.value.code == 2 and "not available" in capsys.readouterr().err
    assert fingerprint(root) == before


def test_bench_gate_problem_at_start_keeps_everything(root: Path, unchanged, monkeypatch, quiet_bench) -> None:
    monkeypatch.setattr(benchrun, "gate", lambda staging, only=(): ["explicit: concurrent: unexpected leak"])
    monkeypatch.setattr(benchrun, "subprocess", types.SimpleNamespace(run=fake_jobs()))
    assert bench(root) == 1
    unchanged("bench/run.json")


@pytest.mark.parametrize("error", [Injected, KeyboardInterrupt], ids=["failing-job", "ctrl-c"])
def test_bench_failing_mid_run_keeps_everything(root: Path, unchanged, monkeypatch, quiet_bench, error) -> None:
    jobs = fake_jobs(fail_at=5, error=error)
    monkeypatch.setattr(benchrun, "subprocess", types.SimpleNamespace(run=jobs))
    ends(lambda: bench(root), RuntimeError if error is Injected else error)
    unchanged("bench/run.json")


def test_bench_error_while_summarizing_at_the_end_keeps_everything(root, unchanged, monkeypatch, quiet_bench) -> None:
    monkeypatch.setattr(benchrun, "subprocess", types.SimpleNamespace(run=fake_jobs()))
    monkeypatch.setattr(benchrun.benchstats, "summarize", lambda directory: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OSError, match="disk"):
        bench(root)
    unchanged("bench/run.json")


def test_bench_that_succeeds_replaces_its_files_and_keeps_the_instruction_counts(root, monkeypatch, quiet_bench):
    instructions = {p.name: p.read_bytes() for p in (root / "bench").glob("instructions_*.json")}
    monkeypatch.setattr(benchrun, "subprocess", types.SimpleNamespace(run=fake_jobs()))
    monkeypatch.setattr(benchrun.benchstats, "summarize", fake_summarize)
    assert bench(root) == 0
    bench_dir = root / "bench"
    assert json.loads((bench_dir / "app_baseline.json").read_text()) == {"fake": "partial pyperf output"}
    assert resultfiles.read_json(bench_dir / "summary.json")["files"] == sorted(p.name for p in bench_dir.iterdir())
    assert {p.name: p.read_bytes() for p in bench_dir.glob("instructions_*.json")} == instructions
    assert not list(root.glob(f"{staged.PREFIX}*"))


def fake_summarize(directory: Path) -> dict:
    names = sorted({p.name for p in directory.iterdir()} | {benchstats.SUMMARY_NAME})
    resultfiles.write_json(directory / benchstats.SUMMARY_NAME, {"files": names})
    return {"files": names}


def test_instruction_counts_failing_job_keeps_everything(root: Path, unchanged, monkeypatch, quiet_bench) -> None:
    monkeypatch.setattr(benchrun, "subprocess", types.SimpleNamespace(run=fake_jobs(fail_at=1)))
    assert bench(root, "--mode", "instructions") == 1
    unchanged("bench/run_instructions.json")


def test_instruction_counts_interrupted_keep_everything(root: Path, unchanged, monkeypatch, quiet_bench) -> None:
    jobs = fake_jobs(fail_at=1, error=KeyboardInterrupt)
    monkeypatch.setattr(benchrun, "subprocess", types.SimpleNamespace(run=jobs))
    ends(lambda: bench(root, "--mode", "instructions"), KeyboardInterrupt)
    unchanged("bench/run_instructions.json")


def test_instruction_counts_error_while_writing_keeps_everything(root, unchanged, monkeypatch, quiet_bench) -> None:
    monkeypatch.setattr(benchrun, "subprocess", types.SimpleNamespace(run=fake_jobs()))
    monkeypatch.setattr(benchrun, "write_json", lambda path, data: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        bench(root, "--mode", "instructions")
    unchanged("bench/run_instructions.json")


# load: one run, and sweeps


def fake_result(spec: bounded_run.RunSpec) -> dict:
    return {
        "run": spec.as_dict(),
        "variant_category": registry.get(spec.variant).category,
        "rps": 1.0,
        "cpu": {"generator_bound": False, "server_us_per_request": None},
        "latency_ms": {"p99": None},
        "failures_total": {"leak": 0, "lost": 0, "other": 0, "requests": 1},
        "processes": {"started": [1], "left_behind": []},
        "timing": {
            "total_s": 0.1,
            "server_start_s": 0.1,
            "until_users_s": 0.0,
            "load_s": 0.0,
            "stop_s": 0.0,
            "stopped_early": False,
        },
        "environment": fake_environment(),
    }


def fake_execute(fail_at: int | None = None, error: type[BaseException] = Injected) -> Callable:
    calls = []

    def execute(spec: bounded_run.RunSpec) -> dict:
        calls.append(spec)
        if fail_at is not None and len(calls) == fail_at:
            raise error("the server exited")
        return fake_result(spec)

    return execute


def load(root: Path) -> int:
    return cli.main(["load", "--variant", "baseline", "--results-dir", str(root / "load")])


@pytest.mark.parametrize("error", [Injected, KeyboardInterrupt], ids=["server-fails", "ctrl-c"])
def test_load_run_failing_at_start_adds_nothing(root: Path, unchanged, monkeypatch, error) -> None:
    monkeypatch.setattr(bounded_run, "execute", fake_execute(fail_at=1, error=error))
    ends(lambda: load(root), error)
    unchanged()


def test_load_run_leaving_processes_behind_adds_nothing(root: Path, unchanged, monkeypatch) -> None:
    def leaves(spec: bounded_run.RunSpec) -> dict:
        return fake_result(spec) | {"processes": {"started": [1, 2], "left_behind": [2]}}

    monkeypatch.setattr(bounded_run, "execute", leaves)
    assert load(root) == 1
    unchanged()


def test_load_run_error_while_writing_adds_nothing(root: Path, unchanged, monkeypatch) -> None:
    monkeypatch.setattr(bounded_run, "execute", fake_execute())

    def half_written(path: Path, data: object) -> Path:
        path.write_text('{"run": ')  # a torn file, in the staging directory only
        raise OSError("disk full")

    monkeypatch.setattr(bounded_run, "write_json", half_written)
    with pytest.raises(OSError):
        load(root)
    unchanged()


def sweep_of(root: Path, *variants: str) -> int:
    command = ["sweep", "--mode", "quick", "--server", "uvloop-httptools", "--front", "direct"]
    command += ["--results-dir", str(root / "load")]
    return cli.main(command + [arg for variant in variants for arg in ("--variant", variant)])


@pytest.mark.parametrize("fail_at", [1, 2, 3], ids=["start", "middle", "last"])
def test_sweep_with_a_failing_run_adds_none_of_its_runs(root: Path, unchanged, monkeypatch, fail_at: int) -> None:
    monkeypatch.setattr(bounded_run, "execute", fake_execute(fail_at=fail_at))
    assert sweep_of(root, "baseline", "explicit", "request_state") == 1
    unchanged()


def test_sweep_interrupted_adds_none_of_its_runs(root: Path, unchanged, monkeypatch) -> None:
    monkeypatch.setattr(bounded_run, "execute", fake_execute(fail_at=2, error=KeyboardInterrupt))
    ends(lambda: sweep_of(root, "baseline", "explicit", "request_state"), KeyboardInterrupt)
    unchanged()


def test_sweep_failing_while_its_files_go_in_takes_back_those_already_moved(root, unchanged, monkeypatch) -> None:
    monkeypatch.setattr(bounded_run, "execute", fake_execute())
    real_replace, moved = os.replace, []

    def replace(source: str | Path, destination: str | Path) -> None:
        if Path(destination).parent == root / "load":
            moved.append(destination)
            if len(moved) == 3:
                raise OSError("disk full")
        real_replace(source, destination)

    monkeypatch.setattr(staged.os, "replace", replace)
    with pytest.raises(OSError):
        sweep_of(root, "baseline", "explicit", "request_state")
    monkeypatch.undo()
    assert len(moved) == 3  # two of its files were in before the third failed: they were taken back
    unchanged()


def test_side_by_side_rounds_are_staged_too(root: Path, unchanged, monkeypatch) -> None:
    def measure_round(order: list[str], index: int, layout: str) -> dict:
        if index == 1:
            raise Injected("a server did not start")
        slots = {slot: {"server_us_per_request": 1.0, "ratio_vs_baseline": 1.0} for slot in order}
        return {"kind": loadstats.SIDE_KIND, "aa_ratio": 1.0, "slots": slots, "environment": fake_environment()}

    monkeypatch.setattr(sweep.side_by_side, "exclusive_run", contextlib.nullcontext)
    monkeypatch.setattr(sweep.side_by_side, "measure_round", measure_round)
    with pytest.raises(Injected):  # its second round fails
        cli.main(["sweep", "--mode", "side", "--variant", "baseline", "--results-dir", str(root / "load")])
    unchanged()


def test_sweep_that_succeeds_adds_its_runs(root: Path, monkeypatch) -> None:
    monkeypatch.setattr(bounded_run, "execute", fake_execute())
    before = set((root / "load").iterdir())
    assert sweep_of(root, "baseline", "explicit") == 0
    added = set((root / "load").glob("*.json")) - before
    assert len(added) == 2  # one (fake) result per variant
    assert (root / "load" / "hunt" / "run.json").exists()  # and the hunt's timing record, with them
    assert not list(root.glob(f"{staged.PREFIX}*"))


# soak


def soak(root: Path) -> int:
    return cli.main(["soak", "--pair", PAIR, "--requests", "100", "--out", str(root / "soak")])


def soaked(self: soakrun.Soak, pair: dict, config: object) -> None:
    pair["requests"] = pair["target_requests"]
    pair["complete"] = True
    pair["growth"] = {"judged": True, "passed": True}  # a pair passes only on judged memory evidence


@pytest.mark.parametrize("fault", ["ctrl-c", "pair-fails"])
def test_incomplete_soak_goes_next_to_the_complete_one(root: Path, unchanged, monkeypatch, fault: str) -> None:
    def breaks(self: soakrun.Soak, pair: dict, config: object) -> None:
        pair["requests"] = 7
        raise KeyboardInterrupt if fault == "ctrl-c" else soakrun.SoakFailure("the server exited")

    monkeypatch.setattr(soakrun.Soak, "soak_pair", breaks)
    assert soak(root) == (130 if fault == "ctrl-c" else 1)
    incomplete = root / "soak.incomplete"
    summary = resultfiles.read_json(incomplete / "summary.json")
    assert summary["complete"] is False and summary["requests"] == 7
    assert summary["interrupted"] is (fault == "ctrl-c")
    shutil.rmtree(incomplete)  # its own place: everything else is as it was
    unchanged("soak/summary.json")


def test_soak_error_while_writing_its_summary_keeps_the_complete_soak(root: Path, unchanged, monkeypatch) -> None:
    monkeypatch.setattr(soakrun.Soak, "soak_pair", soaked)
    # the summary, the one file that says which soak it was, is the oldest of a hundred (a fresh clone gives them all
    # one time, in any order): the kept-results line must still name its commit
    os.utime(root / "soak" / "summary.json", (1, 1))
    real = soakrun.write_json

    def write_json(path: Path, data: object) -> Path:
        if path.name == soakrun.SUMMARY_NAME:
            raise OSError("disk full")
        return real(path, data)

    monkeypatch.setattr(soakrun, "write_json", write_json)
    with pytest.raises(OSError):
        soak(root)
    assert (root / "soak.incomplete" / "explicit--uvloop-httptools.json").exists()  # what it had
    shutil.rmtree(root / "soak.incomplete")
    unchanged("soak/summary.json")


def test_soak_that_completes_replaces_the_previous_one(root: Path, monkeypatch) -> None:
    monkeypatch.setattr(soakrun.Soak, "soak_pair", soaked)
    assert soak(root) == 0
    assert sorted(p.name for p in (root / "soak").iterdir()) == ["explicit--uvloop-httptools.json", "summary.json"]
    assert resultfiles.read_json(root / "soak" / "summary.json")["passed"] is True
    assert not (root / "soak.incomplete").exists() and not list(root.glob(f"{staged.PREFIX}*"))


# versions


@pytest.fixture
def fake_stacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(versions, "lock_problems", lambda stack: [])
    monkeypatch.setattr(versions.envs, "ensure", lambda stack: types.SimpleNamespace(stack=stack))


def versions_of(root: Path, *stacks: str) -> int:
    return cli.main(["versions", "--results-dir", str(root), *(arg for s in stacks for arg in ("--stack", s))])


def stack_writer(fail_at: int | None = None, error: type[BaseException] = Injected) -> Callable:
    calls = []

    def run_stack(env: types.SimpleNamespace, options: object, out: Path) -> Path:
        calls.append(env.stack.name)
        path = resultfiles.write_json(out / f"{env.stack.name}.json", {"new": True, "environment": fake_environment()})
        if len(calls) == fail_at:
            raise error("the hunt failed")
        return path

    return run_stack


@pytest.mark.parametrize("fail_at", [1, 2], ids=["start", "middle"])
def test_versions_interrupted_keeps_every_stack(root: Path, unchanged, monkeypatch, fake_stacks, fail_at) -> None:
    monkeypatch.setattr(versions, "run_stack", stack_writer(fail_at=fail_at, error=KeyboardInterrupt))
    ends(lambda: versions_of(root, STACKS[0].name, STACKS[1].name), KeyboardInterrupt)
    unchanged()


def test_versions_a_stack_that_fails_is_marked_and_the_others_are_kept(root: Path, monkeypatch, fake_stacks) -> None:
    """A harness failure in one stack is that stack's "cannot run" (issue: no evidence is no verdict); the run goes
    on, and the stacks it did not run are carried over as they were."""
    monkeypatch.setattr(versions, "run_stack", stack_writer(fail_at=1, error=Injected))
    monkeypatch.setattr(versions.report, "render", lambda results_dir: [])
    others = {
        p.name: p.read_bytes() for p in (root / "versions").iterdir() if p.stem not in (STACKS[0].name, STACKS[1].name)
    }
    assert versions_of(root, STACKS[0].name, STACKS[1].name) == 0
    assert resultfiles.read_json(root / "versions" / f"{STACKS[0].name}.json")["status"] == "cannot run"
    assert resultfiles.read_json(root / "versions" / f"{STACKS[1].name}.json")["new"] is True
    kept = {p.name: p.read_bytes() for p in (root / "versions").iterdir() if p.name in others}
    assert kept == others


def test_versions_failing_to_publish_keeps_every_stack(root: Path, unchanged, monkeypatch, fake_stacks) -> None:
    monkeypatch.setattr(versions, "run_stack", stack_writer())
    monkeypatch.setattr(staged, "exchange", lambda a, b: (_ for _ in ()).throw(OSError("rename failed")))
    with pytest.raises(OSError):
        versions_of(root, STACKS[0].name)
    unchanged()


def test_versions_of_one_stack_carries_the_others_over(root: Path, monkeypatch, fake_stacks) -> None:
    monkeypatch.setattr(versions, "run_stack", stack_writer())
    monkeypatch.setattr(versions.report, "render", lambda results_dir: [])
    others = {p.name: p.read_bytes() for p in (root / "versions").iterdir() if p.stem != STACKS[0].name}
    assert versions_of(root, STACKS[0].name) == 0
    assert resultfiles.read_json(root / "versions" / f"{STACKS[0].name}.json")["new"] is True
    assert {p.name: p.read_bytes() for p in (root / "versions").iterdir() if p.stem != STACKS[0].name} == others


# matrix and verify


def matrix_of(root: Path) -> int:
    return cli.main(["matrix", "--results-dir", str(root)])


@pytest.mark.parametrize("error", [Injected, KeyboardInterrupt], ids=["error", "ctrl-c"])
def test_matrix_failing_while_measuring_keeps_it(root: Path, unchanged, monkeypatch, error) -> None:
    monkeypatch.setattr(matrix, "run_matrix", lambda: (_ for _ in ()).throw(error("boom")))
    ends(lambda: matrix_of(root), error)
    unchanged("matrix/matrix.json")


def test_matrix_error_writing_its_table_keeps_the_json_too(root: Path, unchanged, monkeypatch) -> None:
    measured = resultfiles.read_json(root / "matrix" / "matrix.json")
    measured["environment"] |= fake_environment()
    monkeypatch.setattr(matrix, "run_matrix", lambda: measured)
    real = matrix.resultfiles.write_text

    def write_text(path: Path, text: str) -> Path:
        if path.suffix == ".md":  # the JSON was written, its table fails
            raise OSError("disk full")
        return real(path, text)

    monkeypatch.setattr(matrix.resultfiles, "write_text", write_text)
    with pytest.raises(OSError):
        matrix_of(root)
    unchanged("matrix/matrix.json")


def counts() -> dict[str, dict[str, int]]:
    return {scenario: {} for scenario in gate.MEASURED}


def verify_of(root: Path) -> int:
    return cli.main(["verify", "--variant", "baseline", "--variant", "explicit", "--results-dir", str(root)])


@pytest.mark.parametrize("fail_at", [1, 2], ids=["start", "middle"])
@pytest.mark.parametrize("error", [Injected, KeyboardInterrupt], ids=["error", "ctrl-c"])
def test_verify_failing_keeps_the_verdicts(root: Path, unchanged, monkeypatch, fail_at, error) -> None:
    calls = []

    def measure(variant: registry.Variant) -> dict:
        calls.append(variant)
        if len(calls) == fail_at:
            raise error("boom")
        return counts()

    monkeypatch.setattr(gate, "measure", measure)
    monkeypatch.setattr(gate.conformance, "scenario_problems", lambda variant, counts: [])
    ends(lambda: verify_of(root), error)
    unchanged("verify/verdicts.json")


def test_verify_error_while_writing_keeps_the_verdicts(root: Path, unchanged, monkeypatch) -> None:
    monkeypatch.setattr(gate, "measure", lambda variant: counts())
    monkeypatch.setattr(gate.conformance, "scenario_problems", lambda variant, counts: [])
    monkeypatch.setattr(gate.resultfiles, "write_json", lambda path, data: (_ for _ in ()).throw(OSError("full")))
    with pytest.raises(OSError):
        verify_of(root)
    unchanged("verify/verdicts.json")


def test_verify_that_succeeds_replaces_the_verdicts(root: Path, monkeypatch) -> None:
    monkeypatch.setattr(gate, "measure", lambda variant: counts())
    monkeypatch.setattr(gate.conformance, "scenario_problems", lambda variant, counts: [])
    before = reader(root)
    assert verify_of(root) == 0
    assert set(resultfiles.read_json(root / "verify" / "verdicts.json")["variants"]) == {"baseline", "explicit"}
    assert reader(root) != before  # the check above can fail: the report does see a new run


# the mechanism itself


def stale(root: Path, target: str, held: bool = False) -> tuple[Path, int | None]:
    base = root / f"{staged.PREFIX}{target}-999999-deadbeef"
    lock = base.with_name(base.name + staged.LOCK_SUFFIX)
    lock.touch()
    base.mkdir()
    (base / "app_baseline.json").write_text("half a run")
    fd = None
    if held:
        fd = os.open(lock, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
    return base, fd


def test_a_killed_runs_staging_is_never_read_and_goes_at_the_next_start(root: Path, monkeypatch) -> None:
    seen = reader(root)
    left, _ = stale(root, "bench")
    live, fd = stale(root, "verify", held=True)
    assert reader(root) == seen  # readers open fixed paths, never a staging directory
    monkeypatch.setattr(matrix, "run_matrix", lambda: (_ for _ in ()).throw(Injected("boom")))
    with pytest.raises(Injected):
        matrix_of(root)
    assert not left.exists() and not left.with_name(left.name + staged.LOCK_SUFFIX).exists()
    assert live.exists()  # its run still holds its lock
    assert fd is not None
    os.close(fd)


def test_a_swap_killed_between_two_renames_is_undone(root: Path) -> None:
    base = root / f"{staged.PREFIX}matrix-999999-deadbeef"
    before = fingerprint(root / "matrix")
    os.rename(root / "matrix", base.with_name(base.name + staged.OLD_SUFFIX))
    staged.clean_stale(root)
    assert fingerprint(root / "matrix") == before and not list(root.glob(f"{staged.PREFIX}*"))


def test_the_two_rename_swap_where_renameat2_cannot(root: Path, monkeypatch) -> None:
    monkeypatch.setattr(staged, "_renameat2_exchange", lambda a, b: False)
    with staged.staged_run(root / "matrix") as stage:
        (stage.dir / "matrix.json").write_text("{}")
    assert [p.name for p in (root / "matrix").iterdir()] == ["matrix.json"]
    assert not list(root.glob(f"{staged.PREFIX}*"))


@pytest.mark.parametrize("command", ["verify", "matrix", "versions", "bench", "load", "sweep"])
def test_results_dir_that_is_a_file_is_bad_usage(tmp_path: Path, capsys, command: str) -> None:
    (tmp_path / "file").write_text("")
    extra = ["--variant", "baseline"] if command == "load" else []
    with pytest.raises(SystemExit) as exited:
        cli.main([command, *extra, "--results-dir", str(tmp_path / "file" / "x")])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "not a directory" in err and len(err.strip().splitlines()) == 1
