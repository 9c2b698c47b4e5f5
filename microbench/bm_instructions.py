"""Instructions executed per request by every variant app, counted under callgrind: figures the host cannot move.

Why: CPU time on this shared VM moves with the host (one layer measured 99.7 µs in one run, 246 µs in another), so a
one-middleware difference of about 1 µs cannot be resolved in time. The number of instructions a request executes
does not depend on the host's speed: counted by callgrind it repeats to a few parts in ten thousand.

How: one worker process, started under `valgrind --tool=callgrind --dump-before=getppid`, loads every app (each
variant, a second freshly imported instance of baseline for the A/A control, and bm_depth's apps) and checks one
response of each. It then runs segments of `--requests` requests of one app and one method, the same requests as
bm_apps (GET and POST, every identity header), in a new shuffled order every block. It calls `os.getppid()` right
before and right after each segment: callgrind writes its counters to a new file (and zeroes them) every time the
process enters libc's `getppid`, which nothing else here calls, so each segment's file holds exactly its requests:
start-up, imports, checks and warm-up fall into the files between segments, which are discarded. Every segment
starts after one untimed request (which re-creates anyio's worker thread if it idled out) and a full `gc.collect()`
(so each segment starts from the same collector state, whatever ran before it). PYTHONHASHSEED is fixed.

What instruction counts leave out: cache and TLB misses, branch mispredictions, the cost of handing work to the
threadpool thread and waking it (waiting is no instruction), and everything a real server adds (sockets, parsing).
An instruction is not a unit of time: CPU time stays the second figure, and the one that includes all of these.

Output, pyperf JSON through pyperf's API (unit "integer": instructions per request), one file per app so that
`pyperf compare_to instructions_baseline.json instructions_contextvar_asgi.json` pairs the benchmarks by name:
`instructions_<variant>.json` and `instructions_baseline_aa.json` (benchmarks `instructions_get`,
`instructions_post`), `instructions_depth_<kind>.json` (benchmarks `depth_0` ... `depth_5`, GET). Each worker
process is one run; its values are its blocks in order.

    python microbench/bm_instructions.py --requests 200 --blocks 3 --processes 2 --output-dir results/bench
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyperf

from apps.harness import inprocess, registry, traffic
from microbench import bm_depth
from microbench.asgi_timing import versions
from microbench.bm_apps import METHODS, request_spec, verify

# Measured here: callgrind runs this Python at about 12 M instructions/s, ~0.13 s per request (~1.5 M instructions);
# start-up (imports of every library, checking every app) is 4 G instructions, ~85 s per process.
REQUESTS = 20  # requests per segment: the count per request repeats to well under 0.1% (see the A/A) already
BLOCKS = 2  # segments of every app and method per process: the within-process repeatability
PROCESSES = 2  # worker processes, run side by side (counts do not depend on load): the between-process repeatability
WARMUP_REQUESTS = 5  # per app and method before any segment: 3.11 specialises bytecode after its first executions
HASH_SEED = "0"  # dict and set order, hence the code paths taken, identical in every process
BASELINE = registry.reference()
AA_NAME = f"{BASELINE}_aa"
MARKER_FUNCTION = "getppid"  # libc symbol callgrind dumps before; os.getppid() is its only caller in the worker
UNIT = "integer"
FILE_PREFIX = "instructions_"
DISCARD = "-"  # label of a dump that is not a measured segment
COUNTER = "callgrind Ir (instructions executed, every thread)"


class MeasurementBroken(RuntimeError):
    """callgrind wrote another number of dumps than the worker made segments: the mapping would be wrong."""


def marker() -> None:
    """Callgrind dumps (and zeroes) its counters right before this call reaches libc's getppid."""
    os.getppid()


def bench_name(method: str) -> str:
    return f"instructions_{method}"


def app_file(output_dir: Path, app: str) -> Path:
    return output_dir / f"{FILE_PREFIX}{app}.json"


def depth_file(output_dir: Path, kind: str) -> Path:
    return output_dir / f"{FILE_PREFIX}depth_{kind}.json"


def fresh_instance(module_name: str, alias: str) -> object:
    """A second, separately executed copy of a variant's module (its own app object), for the A/A control."""
    origin = importlib.util.find_spec(module_name).origin
    spec = importlib.util.spec_from_file_location(alias, origin)
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    return copy.app


def loaded_apps(only: list[str] | None = None) -> dict[tuple[str, str], tuple[object, dict[str, str | int]]]:
    """(app name, method) -> (app, proof from its checked response); depth apps (GET only) by their title.

    `only`: these variants (and always baseline with its copy): a smoke run need not import every library.
    """
    apps: dict[tuple[str, str], tuple[object, dict[str, str | int]]] = {}
    chosen = [v for v in registry.VARIANTS if only is None or v.name in only or v.name == BASELINE]
    instances = {variant.name: (variant, variant.load()) for variant in chosen}
    instances[AA_NAME] = (registry.get(BASELINE), fresh_instance(registry.get(BASELINE).module, "ctxbench_baseline_aa"))
    for method in METHODS:
        spec = request_spec(method)
        for name, (variant, app) in instances.items():
            apps[(name, method)] = (app, verify(variant, app, spec))
    spec = request_spec(traffic.GET)
    for kind in bm_depth.KINDS:
        for depth in bm_depth.DEPTHS:
            app = bm_depth.build_app(kind, depth)
            apps[(app.title, traffic.GET)] = (app, bm_depth.verify(app, depth, spec))
    return apps


async def segments(apps: dict, requests: int, blocks: int, seed: int) -> list[str]:
    """Run every segment between two markers; return the label of every dump, in order."""
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    labels: list[str] = []
    specs = {method: request_spec(method) for method in METHODS}
    for name, method in sorted(apps):
        for _ in range(WARMUP_REQUESTS):
            await loop.create_task(inprocess.call(apps[(name, method)][0], specs[method]))
    for block in range(blocks):
        order = sorted(apps)
        rng.shuffle(order)  # no app always first or always after the same neighbour
        for name, method in order:
            app, spec = apps[(name, method)][0], specs[method]
            await loop.create_task(inprocess.call(app, spec))  # untimed: re-creates an idled-out worker thread
            gc.collect()
            marker()
            labels.append(DISCARD)
            for _ in range(requests):
                await loop.create_task(inprocess.call(app, spec))
            marker()
            labels.append(json.dumps([name, method, block]))
    return labels


def worker(requests: int, blocks: int, seed: int, plan: Path, only: list[str] | None) -> None:
    apps = loaded_apps(only)
    labels = asyncio.run(segments(apps, requests, blocks, seed))
    proofs = {f"{name} {method}": proof for (name, method), (_, proof) in apps.items()}
    plan.write_text(json.dumps({"labels": labels, "proofs": proofs}))


def callgrind_command(out_file: Path) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        f"--dump-before={MARKER_FUNCTION}",
        "--dump-line=no",  # totals only: smaller dumps, written faster
        f"--callgrind-out-file={out_file}",
    ]


def dump_total(path: Path) -> int:
    """The `summary:` (total Ir) line of one callgrind dump."""
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise MeasurementBroken(f"{path}: no summary line")


def measure_process(index: int, args: argparse.Namespace, tmp: Path) -> tuple[list[tuple[str, str, int, float]], dict]:
    """One worker under callgrind: [(app, method, block, instructions per request)], the proofs."""
    out, plan = tmp / f"cg.{index}.out", tmp / f"plan.{index}.json"
    seed = args.seed * 1000 + index
    command = [*callgrind_command(out), sys.executable, __file__, "--worker-plan", str(plan)]
    command += ["--requests", str(args.requests), "--blocks", str(args.blocks), "--seed", str(seed)]
    command += [item for name in args.variant or () for item in ("--variant", name)]
    env = os.environ | {"PYTHONHASHSEED": HASH_SEED}
    result = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise MeasurementBroken(f"process {index} exited {result.returncode}:\n{result.stderr[-3000:]}")
    data = json.loads(plan.read_text())
    labels = data["labels"]
    dumps = sorted(tmp.glob(f"cg.{index}.out.*"), key=lambda path: int(path.suffix[1:]))
    if len(dumps) != len(labels):
        raise MeasurementBroken(f"process {index}: {len(dumps)} callgrind dumps for {len(labels)} markers")
    found = []
    for label, dump in zip(labels, dumps, strict=True):
        if label != DISCARD:
            name, method, block = json.loads(label)
            found.append((name, method, block, dump_total(dump) / args.requests))
    return found, data["proofs"]


def write_suites(
    per_process: list[tuple[list[tuple[str, str, int, float]], dict]], args: argparse.Namespace
) -> list[Path]:
    """One pyperf file per app (variants, baseline_aa) and per depth kind; each process one run, blocks its values."""
    files: dict[Path, list[pyperf.Benchmark]] = {}
    common = {"unit": UNIT, "loops": args.requests, "ctxbench_counter": COUNTER, "ctxbench_hash_seed": HASH_SEED}
    common |= {"description": "instructions executed per request, in-process (raw ASGI), callgrind"} | versions()
    keys = sorted({(name, method) for values, _ in per_process for name, method, _, _ in values})
    for name, method in keys:
        if name.startswith("depth-"):
            _, kind, depth = name.split("-")
            path, bench = depth_file(args.output_dir, kind), f"depth_{depth}"
        else:
            path, bench = app_file(args.output_dir, name), bench_name(method)
        runs = []
        for index, (values, proofs) in enumerate(per_process):
            series = [count for app, m, _, count in sorted(values, key=lambda v: v[2]) if (app, m) == (name, method)]
            metadata = common | {"name": bench, "ctxbench_seed": args.seed * 1000 + index}
            metadata |= proofs[f"{name} {method}"] | {"ctxbench_instance": name}
            runs.append(pyperf.Run(series, warmups=None, metadata=metadata, collect_metadata=False))
        files.setdefault(path, []).append(pyperf.Benchmark(runs))
    written = []
    for path, benchmarks in files.items():
        suite = pyperf.BenchmarkSuite(sorted(benchmarks, key=lambda b: b.get_name()))
        if path.exists() and args.append:  # rounds append, as pyperf's --append does
            previous = pyperf.BenchmarkSuite.load(str(path))
            previous.add_runs(suite)
            suite = previous
        suite.dump(str(path), replace=True)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path("."))
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--blocks", type=int, default=BLOCKS)
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--append", action="store_true", help="add runs to existing files instead of replacing them")
    parser.add_argument("--variant", action="append", help="only these variants (default: all; baseline always)")
    parser.add_argument("--worker-plan", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_plan:
        worker(args.requests, args.blocks, args.seed, args.worker_plan, args.variant)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: instruction counts need callgrind (apt-get install valgrind)")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ctxbench-callgrind-") as tmp:
        # Side by side, one per core: an instruction count does not depend on what else runs (the point of it).
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            futures = [pool.submit(measure_process, index, args, Path(tmp)) for index in range(args.processes)]
            per_process = [future.result() for future in futures]
    print(f"callgrind: {args.processes} processes in {time.perf_counter() - started:.1f}s", flush=True)
    for path in write_suites(per_process, args):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
