"""Run the microbenchmarks: conformance gate, interleaved pyperf rounds, then summary.json, charts and a table."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from apps.harness import registry
from microbench import attribution, bm_attribution, bm_instructions, bm_paired
from scripts.bench import bench_charts, verify
from scripts.bench import stats as benchstats
from scripts.common.arguments import MAX_SEED, cpu_list, int_range, one_of, output_dir
from scripts.common.environment import ROOT, describe
from scripts.common.lock import exclusive_run
from scripts.common.results import BENCH_DIR, CHARTS_DIR, write_json
from scripts.common.staged import staged_run

MICROBENCH = ROOT / "microbench"
PAIRED_SCRIPT = "bm_paired.py"


@dataclass(frozen=True)
class Mode:
    """Every count of a run, in one place. Each benchmark gets rounds x processes workers, values each."""

    rounds: int  # interleaved passes over every job, each appending to the same files
    processes: int  # pyperf workers per benchmark per round
    values: int  # timed values per worker
    warmups: int  # untimed values per worker
    app_loops: int  # requests per value (apps and depth)
    primitive_loops: int  # iterations per value (each INNER operations)
    paired_blocks: int  # blocks per paired process (bm_paired: every app in turn, BLOCK_REQUESTS requests each)
    paired_processes: int  # paired processes per round
    paired_block_requests: int  # requests of one app per block
    # Instruction counts (microbench/bm_instructions.py under callgrind): 0 requests = not in this mode. They take
    # ~12 minutes (callgrind runs Python ~100x slower), so they have a mode of their own rather than blow `default`.
    instruction_requests: int = 0  # requests per segment
    instruction_blocks: int = 0  # segments of every app per process
    instruction_processes: int = 0  # callgrind processes per app (each app, the A/A twin and the depth apps alone)
    instruction_warmup: int = 0  # requests per app and method before the first segment
    timed: bool = True  # False: only instruction counts; the CPU-time files of the last timed run stay as they are


MODES = {
    # CI: the same code path with tiny counts; the figures mean nothing.
    "smoke": Mode(
        rounds=1,
        processes=1,
        values=2,
        warmups=0,
        app_loops=3,
        primitive_loops=200,
        paired_blocks=2,
        paired_processes=1,
        paired_block_requests=3,
    ),
    # Under 5 minutes with `make matrix` and `make report` (estimated from the parts of the previous default's
    # run: README, "How long things take"). The gate (~70 s) is not cut. Traded: one round of two workers per pyperf
    # benchmark instead of 3 x 2, with shorter values (the independent medians get wider and no longer spread drift
    # over rounds), and 20 paired blocks instead of 60; the paired design (every app in turn
    # within each short block) cancels drift without rounds, so every variant keeps its paired difference and its
    # significance. The previous default (3 rounds x 2 workers, 60 paired blocks, 796 s) sits between this and
    # `rigorous`, the mode for the reference results.
    "default": Mode(
        rounds=1,
        processes=2,  # two workers: the independent comparison keeps a threshold (one per side has none)
        values=3,
        warmups=1,
        app_loops=60,
        primitive_loops=10_000,
        paired_blocks=20,
        paired_processes=1,
        paired_block_requests=bm_paired.BLOCK_REQUESTS,
    ),
    # For publishable figures: more workers (the unit of evidence) and longer values.
    "rigorous": Mode(
        rounds=6,
        processes=3,
        values=5,
        warmups=1,
        app_loops=300,
        primitive_loops=50_000,
        paired_blocks=60,
        paired_processes=2,
        paired_block_requests=bm_paired.BLOCK_REQUESTS,
    ),
    # Instruction counts only (`make bench MODE=instructions`): every variant, the A/A twin and the depth apps, each
    # in callgrind processes of their own.
    "instructions": Mode(
        rounds=0,
        processes=0,
        values=0,
        warmups=0,
        app_loops=0,
        primitive_loops=0,
        paired_blocks=0,
        paired_processes=0,
        paired_block_requests=0,
        instruction_requests=bm_instructions.REQUESTS,
        instruction_blocks=bm_instructions.BLOCKS,
        instruction_processes=bm_instructions.PROCESSES,
        instruction_warmup=bm_instructions.WARMUP_REQUESTS,
        timed=False,
    ),
}
DEPTH_KINDS = benchstats.DEPTH_KINDS
OUR_FILES = (
    "app_*.json",
    "depth_*.json",
    "primitives.json",
    benchstats.PAIRED_NAME,
    f"{benchstats.VARIANT_PAIRED_PREFIX}*.json",  # a full run supersedes every variant measured alone
    benchstats.RUN_NAME,
)
INSTRUCTION_FILES = (
    f"{bm_instructions.FILE_PREFIX}*.json",
    f"{attribution.FILE_PREFIX}*.json",  # where the counts go, from the same run (microbench/bm_attribution.py)
    benchstats.INSTRUCTIONS_RUN_NAME,
)
VARIANT_RUNS = "variants"  # <results-dir>/variants/<name>.json: parameters of a `--variant` run (not a pyperf file)


@dataclass(frozen=True)
class Job:
    """One pyperf invocation: a script, its own options, the file it appends to, and its loop count."""

    script: str
    options: tuple[str, ...]
    output: Path
    loops: int

    def command(self, mode: Mode, affinity: str | None, round_index: int) -> list[str]:
        if self.script == PAIRED_SCRIPT:  # not a pyperf Runner: its own few options, a new block order every round
            command = [sys.executable, str(MICROBENCH / self.script), "-o", str(self.output)]
            command += ["--seed", str(round_index), "--blocks", str(mode.paired_blocks)]
            command += ["--processes", str(mode.paired_processes), "--block-requests", str(mode.paired_block_requests)]
            return command + list(self.options) + (["--affinity", affinity] if affinity else [])
        command = [sys.executable, str(MICROBENCH / self.script), *self.options, "--append", str(self.output)]
        command += ["--processes", str(mode.processes), "--values", str(mode.values)]
        command += ["--warmups", str(mode.warmups), "--loops", str(self.loops), "--quiet"]
        return command + (["--affinity", affinity] if affinity else [])


def variant_jobs(mode: Mode, results_dir: Path, only: tuple[str, ...]) -> list[Job]:
    """One variant's row alone: its own pyperf file, and its paired blocks with baseline in a file of their own."""
    found = [
        Job("bm_apps.py", ("--variant", name), benchstats.app_path(results_dir, name), mode.app_loops) for name in only
    ]
    for name in only:
        found.append(Job(PAIRED_SCRIPT, ("--variant", name), benchstats.variant_paired_path(results_dir, name), 0))
    return found


def jobs(mode: Mode, results_dir: Path, only: tuple[str, ...] = ()) -> list[Job]:
    if only:
        return variant_jobs(mode, results_dir, only)
    found = [
        Job("bm_apps.py", ("--variant", variant.name), benchstats.app_path(results_dir, variant.name), mode.app_loops)
        for variant in registry.VARIANTS
    ]
    aa_options = ("--variant", benchstats.BASELINE, "--series", benchstats.AA_SERIES)
    aa_path = benchstats.app_path(results_dir, benchstats.BASELINE, benchstats.AA_SERIES)
    found.append(Job("bm_apps.py", aa_options, aa_path, mode.app_loops))
    found += [
        Job("bm_depth.py", ("--kind", kind), benchstats.depth_path(results_dir, kind), mode.app_loops)
        for kind in DEPTH_KINDS
    ]
    found.append(Job("bm_primitives.py", (), benchstats.primitives_path(results_dir), mode.primitive_loops))
    found.append(Job(PAIRED_SCRIPT, (), benchstats.paired_path(results_dir), 0))
    return found


def default_affinity() -> str | None:
    """The last CPU: workers and their threadpool thread share one core, the manager and the rest keep the others."""
    count = os.cpu_count() or 1
    return str(count - 1) if count > 1 else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=list(MODES), default="default")
    parser.add_argument(
        "--results-dir", type=output_dir, default=BENCH_DIR, help="where the pyperf JSON and summary go"
    )
    parser.add_argument("--charts-dir", type=output_dir, help=f"default: {CHARTS_DIR} (or <results-dir>/charts)")
    parser.add_argument(
        "--affinity", type=cpu_list, default=default_affinity(), help="CPU list for workers ('' for none)"
    )
    parser.add_argument(
        "--seed", type=int_range(0, MAX_SEED), default=0, help="seed of the job order shuffled every round"
    )
    parser.add_argument("--from-results", action="store_true", help="only rebuild summary, charts and table")
    parser.add_argument(
        "--variant",
        action="append",
        type=one_of("variant", [variant.name for variant in registry.VARIANTS]),
        help="only this variant's row: its gate, its own runs and its paired blocks with baseline (replacing its "
        "previous ones; the other variants' results stay)",
    )


def check_arguments(args: argparse.Namespace) -> str | None:
    if args.from_results and not args.results_dir.is_dir():
        return f"--from-results reads {str(args.results_dir)!r}, which does not exist"
    return None


def gate(results_dir: Path, only: tuple[str, ...] = ()) -> list[str]:
    """Conformance of every variant (or of `only`) at the full request count (fewer can miss the negative control's
    leaks).

    It is `make verify` itself, so its verdict counts land next to the bench results (results/verify/) and
    nothing measures them a second time; `only` replaces those variants' entries and keeps the others.
    """
    chosen = [variant for variant in registry.VARIANTS if not only or variant.name in only]
    return verify.verify(chosen, results_dir.parent, merge=bool(only))


def run_rounds(
    mode: Mode, results_dir: Path, affinity: str | None, seed: int, only: tuple[str, ...] = ()
) -> list[dict]:
    """Every job once per round, in a new shuffled order each round, so drift spreads over all variants."""
    order = []
    rng = random.Random(seed)
    for round_index in range(mode.rounds):
        round_jobs = jobs(mode, results_dir, only)
        rng.shuffle(round_jobs)
        for job in round_jobs:
            started = time.perf_counter()
            command = job.command(mode, affinity, round_index)
            result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - started
            label = f"{job.script} {' '.join(job.options)}".strip()
            print(f"round {round_index + 1}/{mode.rounds} {label}: {seconds:.1f}s", flush=True)
            if result.returncode != 0:
                raise RuntimeError(f"{label} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
            order.append({"round": round_index + 1, "job": label, "seconds": round(seconds, 2)})
    return order


def count_instructions(args: argparse.Namespace, mode: Mode, staging: Path) -> int:
    """The instruction counts alone, under the machine lock, into an empty staging directory (pyperf appends);
    their parameters go to run_instructions.json (or, for `--variant`, to variants/NAME-instructions.json)."""
    only = tuple(args.variant or ())
    environment = describe()
    command = [sys.executable, str(MICROBENCH / "bm_instructions.py"), "--output-dir", str(staging)]
    command += ["--requests", str(mode.instruction_requests), "--blocks", str(mode.instruction_blocks)]
    command += ["--processes", str(mode.instruction_processes), "--seed", str(args.seed)]
    command += ["--warmup", str(mode.instruction_warmup)]
    command += [option for name in only for option in ("--variant", name)]
    attributed = [sys.executable, str(MICROBENCH / "bm_attribution.py"), "--output-dir", str(staging)]
    attributed += ["--warmup", str(mode.instruction_warmup)]
    attributed += [option for name in only for option in ("--variant", name)]
    print(f"waiting for the machine lock (mode {args.mode})...", flush=True)
    with exclusive_run():
        environment["loadavg"] = list(os.getloadavg())
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, check=False)
        if result.returncode == 0:  # where the counts go: the same apps, wrapped, in callgrind processes of their own
            result = subprocess.run(attributed, cwd=ROOT, check=False)
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        print(f"instruction counts failed ({result.returncode})", file=sys.stderr)
        return 1
    parameters = {"mode": args.mode, **asdict(mode), "seed": args.seed, "timed_seconds": round(seconds, 1)}
    environment = {**environment, "parameters": parameters}
    if only:  # each variant's file holds its run's baseline and A/A (bm_instructions.same_run_name): the reference
        kept = {own for name in only if name != benchstats.BASELINE for own in own_count_files(name)}
        for prefix in (bm_instructions.FILE_PREFIX, attribution.FILE_PREFIX):  # the run's own files stay
            for path in staging.glob(f"{prefix}*.json"):
                if path.name not in kept:
                    path.unlink()
    for name in only:
        write_json(staging / VARIANT_RUNS / f"{name}-instructions.json", {**parameters, "variant": name})
    if not only:
        write_json(staging / benchstats.INSTRUCTIONS_RUN_NAME, {**parameters, "environment": environment})
    return 0


def measure(args: argparse.Namespace, mode: Mode, staging: Path) -> int:
    """One run into an empty staging directory (pyperf's --append accumulates: a run starts from empty files).

    The gate's verdicts go to `<parent of staging>/verify/`: the staging directory sits next to the bench directory.
    """
    if not mode.timed:
        return count_instructions(args, mode, staging)
    only = tuple(args.variant or ())
    environment = describe()
    print(f"waiting for the machine lock (mode {args.mode})...", flush=True)
    with exclusive_run():
        environment["loadavg"] = list(os.getloadavg())  # at the start of the timed run, after any wait for the lock
        started = time.perf_counter()
        problems = gate(staging, only)
        gate_seconds = time.perf_counter() - started
        print(f"conformance gate: {len(problems)} problems in {gate_seconds:.1f}s", flush=True)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        order = run_rounds(mode, staging, args.affinity or None, args.seed, only)
        total = time.perf_counter() - started
    parameters = {"mode": args.mode, **asdict(mode), "affinity": args.affinity or None, "seed": args.seed}
    parameters |= {"gate_seconds": round(gate_seconds, 1), "timed_seconds": round(total, 1), "jobs": order}
    record = {**parameters, "environment": {**environment, "parameters": parameters}}
    for name in only:
        write_json(staging / VARIANT_RUNS / f"{name}.json", {**record, "variant": name})
    if not only:
        write_json(staging / benchstats.RUN_NAME, record)
    return 0


def replaced_files(mode: Mode, only: tuple[str, ...]) -> tuple[str, ...]:
    """What a run replaces in results/bench/: a full run every file of its mode; a `--variant` run only its variants'
    files (their instruction counts hold their run's baseline and A/A), and the variants/ records it extends."""
    if not only:
        return (*(OUR_FILES if mode.timed else INSTRUCTION_FILES), benchstats.SUMMARY_NAME)
    if mode.timed:
        own = [benchstats.app_path(Path(), name).name for name in only]
        own += [benchstats.variant_paired_path(Path(), name).name for name in only]
    else:  # its variants' counts, each with its run's baseline inside; baseline's, the A/A's and depth's stay
        own = [own for name in only if name != benchstats.BASELINE for own in own_count_files(name)]
    return (*own, VARIANT_RUNS, benchstats.SUMMARY_NAME)


def instruction_file(name: str) -> str:
    return bm_instructions.app_file(Path(), name).name


def own_count_files(name: str) -> tuple[str, str]:
    """A variant's count and attribution files: from a run of some variants, each holds that run's baseline."""
    return instruction_file(name), bm_attribution.output_file(Path(), name).name


def staged_measure(args: argparse.Namespace, mode: Mode, results_dir: Path) -> dict | None:
    """Measure into a staging directory; replace this run's files and the summary only if the whole run succeeded.

    Swap with carry-over (scripts.common.staged): results/bench/ holds two runs' files, the timed run's (OUR_FILES)
    and the instruction counts' (INSTRUCTION_FILES), and the runs of single variants (`--variant`); each replaces its
    own, the rest is carried over, and the summary is recomputed over all before the swap, so a reader never sees it
    disagree with the raw files. Returns the summary, or None when the run failed (the previous files are kept).
    """
    only = tuple(args.variant or ())
    replaced = replaced_files(mode, only)
    summaries: list[dict] = []
    origin = (benchstats.RUN_NAME if mode.timed else benchstats.INSTRUCTIONS_RUN_NAME,)
    finalize = lambda d: summaries.append(benchstats.summarize(d))  # noqa: E731 - the summary over the merged files
    with staged_run(results_dir, replaces=replaced, finalize=finalize, origin=origin) as st:
        if only and (results_dir / VARIANT_RUNS).is_dir():  # variants/ is replaced whole: extend the previous one
            shutil.copytree(results_dir / VARIANT_RUNS, st.dir / VARIANT_RUNS)
        if status := measure(args, mode, st.dir):
            st.fail(f"failed (exit code {status})")
    return summaries[0] if summaries else None


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    results_dir: Path = args.results_dir.resolve()
    charts_dir = args.charts_dir or (CHARTS_DIR if results_dir == BENCH_DIR else results_dir / "charts")
    if args.from_results:
        summary = benchstats.summarize(results_dir)
    elif (staged := staged_measure(args, MODES[args.mode], results_dir)) is None:
        return 1
    else:
        summary = staged
    charts = bench_charts.draw_all(summary, charts_dir)
    print(benchstats.table(summary))
    print(f"summary: {results_dir / benchstats.SUMMARY_NAME}; charts: {', '.join(str(path) for path in charts)}")
    print(f"total {time.perf_counter() - started:.1f}s")
    return 0
