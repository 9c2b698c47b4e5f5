"""Every variant app timed in short alternating blocks inside one process: paired costs that survive host drift.

Why: on the shared 2-core VM the host switches the vCPU between speed regimes lasting seconds (a plain Python loop
runs at 35 or 60 ns per iteration, CPU time included), so independent runs of two apps differ by up to 1.6x for no
reason of theirs. Here one process loads every app and times BLOCK_REQUESTS requests of each in turn, in a new
shuffled order every block; the blocks of one round last well under a second, so the apps of a block share the
host's state and the ratio of two apps within a block cancels it. `baseline` is timed twice per block (the second
copy, `baseline_aa`, at its own position) for the A/A control. GET blocks also hold bm_depth's apps (0 to 5 layers).
Known bias, kept for the pairing: sentry_scope's client patches Starlette and FastAPI for the whole process, so every
app timed here runs Sentry's (inactive) wrappers too; the instruction counts (bm_instructions) count each app alone.

Output: pyperf JSON written through pyperf's API (`pyperf stats` reads it), one benchmark per app and method named
`paired_<method>_<app>`; each process is one run whose values are its blocks in order, so value i of two benchmarks
in the same run were measured in the same block. Each process checks every app's response before timing.

    python microbench/bm_paired.py --blocks 30 --processes 2 -o paired.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pyperf

from apps.harness import inprocess, registry, traffic
from microbench import bm_depth
from microbench.asgi_timing import TIMER, TIMER_NAME, versions
from microbench.bm_apps import METHODS, request_spec, verify

BLOCKS = 30  # blocks per process
BLOCK_REQUESTS = 50  # requests of one app per block: ~20 ms; a round of all apps stays well under the host's regimes
WARMUP_BLOCKS = 2  # untimed blocks first (imports, caches, anyio's worker thread)
PROCESSES = 2  # separate processes: hash seed and memory layout differ between them
AA_SUFFIX = "_aa"
BASELINE = registry.reference()


def bench_name(method: str, app_name: str) -> str:
    return f"paired_{method}_{app_name}"


def timed_apps(method: str, only: list[str] | None = None) -> dict[str, tuple[object, dict[str, str | int]]]:
    """name -> (app, proof from its checked response): every variant, baseline again under its A/A name, and for GET
    the depth apps (named by their title, e.g. depth-basehttp-3), so the cost per layer is paired too.

    `only`: these variants, baseline and its A/A copy, no depth apps (one variant's row: `ctxbench variant`)."""
    spec = request_spec(method)
    chosen = [v for v in registry.VARIANTS if only is None or v.name in only or v.name == BASELINE]
    variants = {variant.name: variant for variant in chosen} | {BASELINE + AA_SUFFIX: registry.get(BASELINE)}
    found = {name: (variant.load(), variant) for name, variant in variants.items()}
    apps = {name: (app, verify(variant, app, spec)) for name, (app, variant) in found.items()}
    if method == traffic.GET and only is None:  # the depth apps serve GET only
        for kind in bm_depth.KINDS:
            for depth in bm_depth.DEPTHS:
                app = bm_depth.build_app(kind, depth)
                apps[app.title] = (app, bm_depth.verify(app, depth, spec))
    return apps


async def time_block(app: object, spec: traffic.RequestSpec, requests: int) -> float:
    loop = asyncio.get_running_loop()
    start = TIMER()
    for _ in range(requests):
        await loop.create_task(inprocess.call(app, spec))
    return (TIMER() - start) / requests


async def measure(
    method: str, loaded: dict[str, object], blocks: int, block_requests: int, seed: int
) -> dict[str, list[float]]:
    spec = request_spec(method)
    rng = random.Random(seed)
    values: dict[str, list[float]] = {name: [] for name in loaded}
    for block in range(WARMUP_BLOCKS + blocks):
        order = list(loaded)
        rng.shuffle(order)  # no app always first or always after the same neighbour
        for name in order:
            seconds = await time_block(loaded[name], spec, block_requests)
            if block >= WARMUP_BLOCKS:
                values[name].append(seconds)
    return values


def worker(blocks: int, block_requests: int, seed: int, output: Path, only: list[str] | None = None) -> None:
    """One process: verify every app, time every method, write one pyperf run per app and method."""
    benchmarks = []
    for method in METHODS:
        apps = timed_apps(method, only)
        loaded = {name: app for name, (app, _) in apps.items()}
        values = asyncio.run(measure(method, loaded, blocks, block_requests, seed))
        for name, series in values.items():
            metadata = {"name": bench_name(method, name), "unit": "second", "loops": block_requests}
            metadata |= {"timer": TIMER_NAME, "ctxbench_seed": seed} | apps[name][1] | versions()
            run = pyperf.Run(series, warmups=None, metadata=metadata, collect_metadata=True)
            benchmarks.append(pyperf.Benchmark([run]))
    pyperf.BenchmarkSuite(benchmarks).dump(str(output), replace=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--blocks", type=int, default=BLOCKS)
    parser.add_argument("--block-requests", type=int, default=BLOCK_REQUESTS)
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--affinity", help="CPU list for the worker processes, e.g. 1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", action="append", help="only these variants (baseline and A/A always; no depth)")
    parser.add_argument("--worker-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_output:
        if args.affinity:
            os.sched_setaffinity(0, {int(cpu) for cpu in args.affinity.split(",")})
        worker(args.blocks, args.block_requests, args.seed, args.worker_output, args.variant)
        return
    suite = None
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.processes):
            part = Path(tmp) / f"{index}.json"
            command = [sys.executable, __file__, "-o", str(args.output), "--blocks", str(args.blocks)]
            command += ["--block-requests", str(args.block_requests)]
            command += ["--seed", str(args.seed * 1000 + index), "--worker-output", str(part)]
            command += [option for name in args.variant or () for option in ("--variant", name)]
            subprocess.run(command + (["--affinity", args.affinity] if args.affinity else []), check=True)
            loaded = pyperf.BenchmarkSuite.load(str(part))
            if suite is None:
                suite = loaded
            else:
                suite.add_runs(loaded)
    if args.output.exists():  # rounds append, as pyperf's --append does
        previous = pyperf.BenchmarkSuite.load(str(args.output))
        previous.add_runs(suite)
        suite = previous
    suite.dump(str(args.output), replace=True)


if __name__ == "__main__":
    main()
