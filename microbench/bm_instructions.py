"""Instructions executed per request by every variant app, counted under callgrind: figures the host cannot move.

Why: CPU time on this shared VM moves with the host (one layer measured 99.7 µs in one run, 246 µs in another), so a
one-middleware difference of about 1 µs cannot be resolved in time. The number of instructions a request executes
does not depend on the host's speed: counted by callgrind it repeats to a few parts in ten thousand.

How: one worker process per app, started under `valgrind --tool=callgrind --dump-before=getppid`, loads that app
alone (one variant; or baseline again, in a process of its own, for the A/A control; or bm_depth's apps, which use no
third-party library) and checks one response. Why alone: loading every variant into one process made the A/A copy of
baseline execute +1.5% more instructions, systematically. sentry-sdk's integrations patch Starlette and FastAPI when
sentry_scope's client is created (`Starlette.__call__`, `request_response`, `Middleware.__init__`,
`get_request_handler`): every app and route built after that import carried Sentry's wrappers, inactive but executed
(the copy, built last), and every app in the process paid the patched `Starlette.__call__`. A service runs one app:
so does each worker here. The worker then warms up (`--warmup` requests per app and method) and runs segments of
`--requests` requests of one app and one method, the same requests as bm_apps (GET and POST, every identity header),
in a new shuffled order every block. It calls `os.getppid()` right
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

    python microbench/bm_instructions.py --requests 40 --blocks 3 --warmup 50 --output-dir results/bench
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
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
REQUESTS = 40  # requests per segment: what one request does differently (a thread hand-off) averages out
BLOCKS = 3  # segments of every app and method per process: the within-process repeatability
PROCESSES = 1  # worker processes per app, side by side (counts do not depend on load); the A/A is another process
WARMUP_REQUESTS = 50  # per app and method before any segment: specialisation, caches (5 left a downward drift)
PARALLEL = 2  # callgrind processes at once (one per core)
DEPTH = "depth"  # the group of bm_depth's apps, measured together in their own process
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


def groups(only: list[str] | None = None, depth: bool = False) -> list[str]:
    """What each worker process loads: one variant, baseline's A/A twin, or the depth apps.

    `only`: these variants (and always baseline with its A/A twin, their reference in the same run); the depth apps
    measure what one layer costs, a figure of the whole run, so a run of some variants leaves them out (`depth`: not).
    """
    chosen = [v.name for v in registry.VARIANTS if only is None or v.name in only or v.name == BASELINE]
    return [*chosen, AA_NAME, DEPTH] if depth or not only else [*chosen, AA_NAME]


def same_run_name(app: str, method: str) -> str:
    """A reference's benchmark inside a variant's file, from a run of some variants (`--variant`): counts move a
    little between runs (0.14% for baseline's GET between two runs of this machine), more than the A/A band within
    one, so such a variant is compared with the baseline and A/A of its own run, never with another run's."""
    return f"same_run_{app}_{bench_name(method)}"


def loaded_apps(group: str) -> dict[tuple[str, str], tuple[object, dict[str, str | int]]]:
    """(app name, method) -> (app, proof from its checked response) for one group; depth apps (GET) by their title."""
    apps: dict[tuple[str, str], tuple[object, dict[str, str | int]]] = {}
    if group == DEPTH:
        spec = request_spec(traffic.GET)
        for kind in bm_depth.KINDS:
            for depth in bm_depth.DEPTHS:
                app = bm_depth.build_app(kind, depth)
                apps[(app.title, traffic.GET)] = (app, bm_depth.verify(app, depth, spec))
        return apps
    variant = registry.get(BASELINE if group == AA_NAME else group)
    app = variant.load()  # in a process of its own: for the A/A, baseline imported afresh by another interpreter
    for method in METHODS:
        apps[(group, method)] = (app, verify(variant, app, request_spec(method)))
    return apps


async def segments(apps: dict, requests: int, blocks: int, seed: int, warmup: int) -> list[str]:
    """Run every segment between two markers; return the label of every dump, in order."""
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    labels: list[str] = []
    specs = {method: request_spec(method) for method in METHODS}
    for name, method in sorted(apps):
        for _ in range(warmup):
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


def worker(requests: int, blocks: int, seed: int, plan: Path, group: str, warmup: int) -> None:
    apps = loaded_apps(group)
    labels = asyncio.run(segments(apps, requests, blocks, seed, warmup))
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


def measure_process(
    group: str, index: int, args: argparse.Namespace, tmp: Path
) -> tuple[list[tuple[str, str, int, float]], dict]:
    """One worker of one group under callgrind: [(app, method, block, instructions per request)], the proofs."""
    tmp = tmp / f"{group}.{index}"
    tmp.mkdir()
    out, plan = tmp / f"cg.{index}.out", tmp / f"plan.{index}.json"
    seed = args.seed * 1000 + index
    command = [*callgrind_command(out), sys.executable, __file__, "--worker-plan", str(plan)]
    command += ["--requests", str(args.requests), "--blocks", str(args.blocks), "--seed", str(seed)]
    command += ["--worker-group", group, "--warmup", str(args.warmup)]
    env = os.environ | {"PYTHONHASHSEED": HASH_SEED}
    result = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise MeasurementBroken(f"{group} process {index} exited {result.returncode}:\n{result.stderr[-3000:]}")
    data = json.loads(plan.read_text())
    labels = data["labels"]
    dumps = sorted(tmp.glob(f"cg.{index}.out.*"), key=lambda path: int(path.suffix[1:]))
    if len(dumps) != len(labels):
        raise MeasurementBroken(f"{group} process {index}: {len(dumps)} callgrind dumps for {len(labels)} markers")
    found = []
    for label, dump in zip(labels, dumps, strict=True):
        if label != DISCARD:
            name, method, block = json.loads(label)
            found.append((name, method, block, dump_total(dump) / args.requests))
    return found, data["proofs"]


def write_suites(
    per_process: list[tuple[list[tuple[str, str, int, float]], dict]], args: argparse.Namespace
) -> list[Path]:
    """One pyperf file per app (variants, baseline_aa) and per depth kind; each process one run, blocks its values.

    `per_process`: every process of every group; an app's runs are the processes that measured it.
    """
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
        for index, (values, proofs) in enumerate(item for item in per_process if f"{name} {method}" in item[1]):
            series = [count for app, m, _, count in sorted(values, key=lambda v: v[2]) if (app, m) == (name, method)]
            metadata = common | {"name": bench, "ctxbench_seed": args.seed * 1000 + index}
            metadata |= proofs[f"{name} {method}"] | {"ctxbench_instance": name}
            runs.append(pyperf.Run(series, warmups=None, metadata=metadata, collect_metadata=False))
        files.setdefault(path, []).append(pyperf.Benchmark(runs))
        for variant in (args.variant or ()) if name in (BASELINE, AA_NAME) else ():
            if variant != BASELINE:  # the references of this run, inside the file of each variant it measured
                renamed = {"name": same_run_name(name, method)}
                copies = [pyperf.Run(r.values, None, r.get_metadata() | renamed, False) for r in runs]
                files.setdefault(app_file(args.output_dir, variant), []).append(pyperf.Benchmark(copies))
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
    parser.add_argument("--processes", type=int, default=PROCESSES, help="worker processes per app")
    parser.add_argument("--warmup", type=int, default=WARMUP_REQUESTS, help="requests per app and method first")
    parser.add_argument("--parallel", type=int, default=PARALLEL, help="callgrind processes at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--append", action="store_true", help="add runs to existing files instead of replacing them")
    parser.add_argument("--variant", action="append", help="only these variants (default: all; baseline always)")
    parser.add_argument("--depth", action="store_true", help="with --variant: count the depth apps too")
    parser.add_argument("--worker-plan", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-group", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_plan:
        worker(args.requests, args.blocks, args.seed, args.worker_plan, args.worker_group, args.warmup)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: instruction counts need callgrind (apt-get install valgrind)")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ctxbench-callgrind-") as tmp:
        # Side by side, one per core: an instruction count does not depend on what else runs (the point of it).
        jobs = [(group, index) for index in range(args.processes) for group in groups(args.variant, args.depth)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
            futures = [pool.submit(measure_process, group, index, args, Path(tmp)) for group, index in jobs]
            per_process = [future.result() for future in futures]
    print(f"callgrind: {len(jobs)} processes in {time.perf_counter() - started:.1f}s", flush=True)
    for path in write_suites(per_process, args):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
