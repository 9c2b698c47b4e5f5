"""Run the microbenchmarks: conformance gate, interleaved pyperf rounds, then summary.json, charts and a table."""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from apps.harness import registry
from microbench import bm_instructions, bm_paired
from scripts.bench import bench_charts, verify
from scripts.bench import stats as benchstats
from scripts.common.environment import ROOT, describe
from scripts.common.lock import exclusive_run
from scripts.common.results import BENCH_DIR, CHARTS_DIR, write_json

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
    instruction_processes: int = 0  # callgrind processes (side by side)
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
    # ~13 minutes on the 2-core machine, gate included (796 s timed, 172 s of it the gate: results/bench/run.json).
    "default": Mode(
        rounds=3,
        processes=2,
        values=3,
        warmups=1,
        app_loops=150,
        primitive_loops=20_000,
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
    # Instruction counts only (`make bench MODE=instructions`): every variant, the A/A copy and the depth apps.
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
        timed=False,
    ),
}
DEPTH_KINDS = benchstats.DEPTH_KINDS
OUR_FILES = ("app_*.json", "depth_*.json", "primitives.json", benchstats.PAIRED_NAME, benchstats.RUN_NAME)


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
            return command + (["--affinity", affinity] if affinity else [])
        command = [sys.executable, str(MICROBENCH / self.script), *self.options, "--append", str(self.output)]
        command += ["--processes", str(mode.processes), "--values", str(mode.values)]
        command += ["--warmups", str(mode.warmups), "--loops", str(self.loops), "--quiet"]
        return command + (["--affinity", affinity] if affinity else [])


def jobs(mode: Mode, results_dir: Path) -> list[Job]:
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
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR, help="where the pyperf JSON and summary go")
    parser.add_argument("--charts-dir", type=Path, help=f"default: {CHARTS_DIR} (or <results-dir>/charts)")
    parser.add_argument("--affinity", default=default_affinity(), help="CPU list for workers ('' for none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the job order shuffled every round")
    parser.add_argument("--from-results", action="store_true", help="only rebuild summary, charts and table")


def gate(results_dir: Path) -> list[str]:
    """Conformance of every variant at the full request count (fewer can miss the negative control's leaks).

    It is `make verify` itself, so its verdict counts land next to the bench results (results/verify/) and
    nothing measures them a second time.
    """
    return verify.verify(list(registry.VARIANTS), results_dir.parent)


def run_rounds(mode: Mode, results_dir: Path, affinity: str | None, seed: int) -> list[dict]:
    """Every job once per round, in a new shuffled order each round, so drift spreads over all variants."""
    order = []
    rng = random.Random(seed)
    for round_index in range(mode.rounds):
        round_jobs = jobs(mode, results_dir)
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


def count_instructions(args: argparse.Namespace, mode: Mode, results_dir: Path) -> int:
    """The instruction counts alone, under the machine lock; their parameters go to run_instructions.json."""
    results_dir.mkdir(parents=True, exist_ok=True)
    environment = describe()  # before the old files go (see measure)
    for path in results_dir.glob(f"{bm_instructions.FILE_PREFIX}*.json"):
        path.unlink()
    command = [sys.executable, str(MICROBENCH / "bm_instructions.py"), "--output-dir", str(results_dir)]
    command += ["--requests", str(mode.instruction_requests), "--blocks", str(mode.instruction_blocks)]
    command += ["--processes", str(mode.instruction_processes), "--seed", str(args.seed)]
    print(f"waiting for the machine lock (mode {args.mode})...", flush=True)
    with exclusive_run():
        environment["loadavg"] = list(os.getloadavg())
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, check=False)
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        print(f"instruction counts failed ({result.returncode})", file=sys.stderr)
        return 1
    parameters = {"mode": args.mode, **asdict(mode), "seed": args.seed, "timed_seconds": round(seconds, 1)}
    environment = {**environment, "parameters": parameters}
    write_json(results_dir / benchstats.INSTRUCTIONS_RUN_NAME, {**parameters, "environment": environment})
    return 0


def measure(args: argparse.Namespace, mode: Mode, results_dir: Path) -> int:
    if not mode.timed:
        return count_instructions(args, mode, results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    environment = describe()  # before the old files go: deleting committed results would mark the checkout dirty
    for pattern in OUR_FILES:  # --append accumulates: a new run starts from empty files
        for path in results_dir.glob(pattern):
            path.unlink()
    print(f"waiting for the machine lock (mode {args.mode})...", flush=True)
    with exclusive_run():
        environment["loadavg"] = list(os.getloadavg())  # at the start of the timed run, after any wait for the lock
        started = time.perf_counter()
        problems = gate(results_dir)
        gate_seconds = time.perf_counter() - started
        print(f"conformance gate: {len(problems)} problems in {gate_seconds:.1f}s", flush=True)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        order = run_rounds(mode, results_dir, args.affinity or None, args.seed)
        total = time.perf_counter() - started
    parameters = {"mode": args.mode, **asdict(mode), "affinity": args.affinity or None, "seed": args.seed}
    parameters |= {"gate_seconds": round(gate_seconds, 1), "timed_seconds": round(total, 1), "jobs": order}
    write_json(
        results_dir / benchstats.RUN_NAME, {**parameters, "environment": {**environment, "parameters": parameters}}
    )
    return 0


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    results_dir: Path = args.results_dir.resolve()
    charts_dir = args.charts_dir or (CHARTS_DIR if results_dir == BENCH_DIR else results_dir / "charts")
    if not args.from_results:
        status = measure(args, MODES[args.mode], results_dir)
        if status:
            return status
    summary = benchstats.summarize(results_dir)
    charts = bench_charts.draw_all(summary, charts_dir)
    print(benchstats.table(summary))
    print(f"summary: {results_dir / benchstats.SUMMARY_NAME}; charts: {', '.join(str(path) for path in charts)}")
    print(f"total {time.perf_counter() - started:.1f}s")
    return 0
