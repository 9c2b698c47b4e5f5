"""Instructions a whole server process executes per request (server, event loop, parser, app), counted under callgrind.

Why: "What a server costs" compares servers in CPU time on a host whose speed moves by up to 2.5x (its A/A was
1.076 [0.972-1.107]); an instruction count does not depend on the host's speed.

How: the server (any ServerConfig: uvicorn, gunicorn+uvicorn-worker, hypercorn, granian, daphne) runs its usual
command line under `valgrind --tool=callgrind --trace-children=yes` (gunicorn's and granian's workers are child
processes; every thread of a process is counted, Rust threads included), serving `microbench.server_marker:app`: the
variant behind one path check. One raw keep-alive connection (loadtests.pipeline, one request at a time) sends a
fixed, deterministic sequence: a warm-up of GETs and POSTs, then segments of SHORT and LONG requests of one method,
each segment delimited by a marker request on which the worker calls libc's getsid, where callgrind writes its
counters to a new file and zeroes them; two idle segments come last. A segment of n requests holds n requests plus
the halves of two marker requests (a constant) plus whatever the server does while time passes (uvicorn's 0.1 s
tick, keep-alive timers; under callgrind a request takes 10-30 ms of wall time). The idle segments (no request for
IDLE_S seconds) measure that rate; per request = ((S_long - rate * T_long) - (S_short - rate * T_short)) /
(LONG - SHORT), per block, GET and POST blocks in alternating order. The A/A is the reference variant in a second,
separate server process sent the same sequence.

What the counts leave out: the kernel's socket work (system calls are one instruction each here), waiting, thread
hand-offs and wake-ups (granian's Rust-to-Python hand-off is counted in instructions, not in the time it waits),
cache misses. CPU time stays the second figure.

Output: results/bench/server_instructions/instructions_<label>_<app>.json, pyperf (unit integer: instructions per
request; benchmarks server_get and server_post, one value per block), so `pyperf compare_to` pairs two apps on one
server; run.json beside them: the parameters, every segment, and a row per server, app and method.

    ctxbench server_instructions --server uvloop-httptools --server hypercorn-asyncio
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyperf

from apps.harness import registry, traffic
from loadtests.pipeline import PipelineClient
from scripts.common.arguments import MAX_PROCESSES, output_dir, positive_int
from scripts.common.environment import ROOT, describe
from scripts.common.lock import exclusive_run
from scripts.common.results import BENCH_DIR, write_json
from scripts.common.staged import staged_run
from scripts.load import servers

MARKER_APP = "microbench.server_marker:app"
MARKER_ENV = "CTXBENCH_MARKED_VARIANT"  # as microbench/server_marker.py reads it
MARKER_PATH = "/__ctxbench_marker"
MARKER_FUNCTION = "getsid"
WARMUP_REQUESTS = 20  # per method, before the first segment: specialisation, caches, lazy imports
SHORT, LONG = 5, 45  # requests per segment; their difference cancels the marker requests and start-up effects
BLOCKS = 3  # (short, long) pairs per method per process
# Length of an idle segment (two per process, last): the server's instructions per second of wall time. Shorter than
# every server's keep-alive timeout (gunicorn's uvicorn worker closes an idle connection after 2 s).
IDLE_S = 1.5
START_TIMEOUT_S = 900.0  # callgrind runs imports ~50x slower
IO_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 120.0
HASH_SEED = "0"
SEQ_START = 100_000  # every id the same width: string lengths, hence instruction counts, equal in every segment
PREFIX = "srv"
BASELINE = registry.reference()
AA = f"{BASELINE}_aa"
DEFAULT_SERVERS = ("uvloop-httptools", "asyncio-h11", "gunicorn-uvicorn", "hypercorn-asyncio", "granian", "daphne")
# A directory of their own: the bench summary reads every *.json of results/bench as CPU-time pyperf files, and
# `make bench MODE=instructions` deletes results/bench/instructions_*.json before it counts.
RESULTS_DIR = BENCH_DIR / "server_instructions"
FILE_PREFIX = "instructions_"
RUN_NAME = "run.json"
COUNTER = "callgrind Ir: instructions of the whole server process (every thread, worker processes) per request"
LEAVES_OUT = "the kernel's socket work, waiting, thread hand-offs and wake-ups, cache misses"
METHODS = (traffic.GET, traffic.POST)
DISCARD = "-"


class MeasurementBroken(RuntimeError):
    """The server did not start, answered wrongly, or callgrind's dumps do not match the markers sent."""


@dataclass(frozen=True)
class Job:
    config: servers.ServerConfig
    app: str  # a variant, or AA: the reference in a second process

    @property
    def variant(self) -> str:
        return BASELINE if self.app == AA else self.app


def apps() -> list[str]:
    """The reference, its A/A twin, and the approaches (the registry category "approach")."""
    recommended = [v.name for v in registry.VARIANTS if v.category == registry.APPROACH and v.name != BASELINE]
    return [BASELINE, AA, *recommended]


def output_path(results_dir: Path, label: str, app: str) -> Path:
    return results_dir / f"{FILE_PREFIX}{label}_{app}.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MeasurementBroken(f"server exited {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise MeasurementBroken(f"server did not listen within {START_TIMEOUT_S:.0f}s")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (it runs in its own session), SIGKILL if it does not end."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Sequence:
    """The fixed request sequence: the same ids, in the same order, in every process."""

    def __init__(self) -> None:
        self.seq = SEQ_START

    def next(self, method: str) -> traffic.RequestSpec:
        self.seq += 1
        return traffic.request(method, PREFIX, self.seq, anonymous=False, traced=False)


def send(client: PipelineClient, spec: traffic.RequestSpec, variant: str) -> None:
    (timed,) = client.exchange([spec])
    response = timed.response
    if response.status != 200 or json.loads(response.body).get("variant") != variant:
        raise MeasurementBroken(f"{spec.method} {spec.url}: status {response.status}, body {response.body[:200]!r}")


def mark(client: PipelineClient, host: str) -> None:
    payload = f"GET {MARKER_PATH} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    (timed,) = client.exchange_raw(payload, 1)
    if timed.response.status != 204:
        raise MeasurementBroken(f"marker answered {timed.response.status}")


def drive(port: int, variant: str) -> list[dict]:
    """Warm-up, then every segment between two markers; the label of every dump after the first, in order."""
    host = f"127.0.0.1:{port}"
    client = PipelineClient(f"http://{host}", io_timeout_s=IO_TIMEOUT_S)
    sequence = Sequence()
    labels: list[dict] = []
    try:
        for method in METHODS:
            for _ in range(WARMUP_REQUESTS):
                send(client, sequence.next(method), variant)
        mark(client, host)  # the dump before this one: start-up and warm-up, discarded
        for block in range(BLOCKS):
            lengths = (SHORT, LONG) if block % 2 == 0 else (LONG, SHORT)
            for method in METHODS if block % 2 == 0 else METHODS[::-1]:
                for count in lengths:
                    started = time.monotonic()
                    for _ in range(count):
                        send(client, sequence.next(method), variant)
                    mark(client, host)
                    labels.append({"method": method, "requests": count, "block": block, "wall_s": 0.0})
                    labels[-1]["wall_s"] = time.monotonic() - started
        # Last: the first requests after a pause cost more (+0.9% on a 25-request segment of uvicorn), so no measured
        # segment follows one.
        for block in range(2):
            started = time.monotonic()
            time.sleep(IDLE_S)
            mark(client, host)
            labels.append({"method": "idle", "requests": 0, "block": block, "wall_s": time.monotonic() - started})
    finally:
        client.close()
    return labels


def dump_total(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise MeasurementBroken(f"{path}: no summary line")


def segment_dumps(directory: Path) -> list[Path]:
    """The numbered dumps of the one process that saw the markers (gunicorn's master or granian's parent see none)."""
    by_pid: dict[str, list[Path]] = {}
    for path in directory.glob("cg.*.out.*"):
        by_pid.setdefault(path.name.split(".")[1], []).append(path)
    if len(by_pid) != 1:
        raise MeasurementBroken(f"marker dumps from {len(by_pid)} processes, expected exactly one")
    (dumps,) = by_pid.values()
    return sorted(dumps, key=lambda path: int(path.name.rsplit(".", 1)[1]))


def measure(job: Job, tmp: Path) -> dict:
    """One server process under callgrind: {method: [instructions per request, per block]}, idle rate, checks."""
    port = free_port()
    command = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--dump-before={MARKER_FUNCTION}"]
    command += ["--dump-line=no", f"--callgrind-out-file={tmp}/cg.%p.out"]
    command += job.config.command(MARKER_APP, "127.0.0.1", port)
    env = os.environ | {"PYTHONHASHSEED": HASH_SEED, MARKER_ENV: job.variant}
    log = (tmp / "server.log").open("w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    started = time.perf_counter()
    try:
        wait_listening(process, port)
        labels = drive(port, job.variant)
    except Exception as error:
        stop(process)
        tail = (tmp / "server.log").read_text()[-2000:]
        raise MeasurementBroken(f"{job.config.label} {job.app}: {error}\n{tail}") from error
    stop(process)
    log.close()
    dumps = segment_dumps(tmp)
    if len(dumps) != len(labels) + 1:
        raise MeasurementBroken(f"{job.config.label} {job.app}: {len(dumps)} dumps for {len(labels) + 1} markers")
    segments = [label | {"instructions": dump_total(dump)} for label, dump in zip(labels, dumps[1:], strict=True)]
    return {"segments": segments, "seconds": time.perf_counter() - started} | per_request(segments)


def per_request(segments: list[dict]) -> dict:
    """Per block and method: the long segment minus the short one, each less the idle rate times its wall time."""
    idle = [s["instructions"] / s["wall_s"] for s in segments if s["method"] == "idle"]
    rate = statistics.median(idle)
    values: dict[str, list[float]] = {}
    raw: dict[str, list[float]] = {}
    for method in METHODS:
        for block in sorted({s["block"] for s in segments}):
            pair = {s["requests"]: s for s in segments if s["method"] == method and s["block"] == block}
            long, short = pair[LONG], pair[SHORT]
            corrected = (long["instructions"] - rate * long["wall_s"]) - (
                short["instructions"] - rate * short["wall_s"]
            )
            values.setdefault(method, []).append(corrected / (LONG - SHORT))
            raw.setdefault(method, []).append((long["instructions"] - short["instructions"]) / (LONG - SHORT))
    return {"idle_per_s": rate, "values": values, "uncorrected": raw}


def write(job: Job, found: dict, results_dir: Path, versions: dict[str, str]) -> Path:
    metadata = {"unit": "integer", "loops": LONG - SHORT, "ctxbench_counter": COUNTER, "ctxbench_app": job.variant}
    metadata |= {"ctxbench_instance": job.app, "ctxbench_server": job.config.label, "ctxbench_hash_seed": HASH_SEED}
    metadata |= {"ctxbench_idle_instructions_per_s": round(found["idle_per_s"]), **versions}
    metadata |= {
        "ctxbench_uncorrected": json.dumps({k: [round(v) for v in vs] for k, vs in found["uncorrected"].items()})
    }
    benchmarks = [
        pyperf.Benchmark(
            [pyperf.Run(values, warmups=None, metadata=metadata | {"name": f"server_{method}"}, collect_metadata=False)]
        )
        for method, values in found["values"].items()
    ]
    path = output_path(results_dir, job.config.label, job.app)
    partial = path.with_name(f".{path.name}.tmp")  # atomically: a reader never sees half a file
    pyperf.BenchmarkSuite(benchmarks).dump(str(partial), replace=True)
    os.replace(partial, path)
    return path


def summary_rows(results: dict[Job, dict]) -> list[dict]:
    rows = []
    for job, found in results.items():
        for method, values in found["values"].items():
            reference = results.get(Job(job.config, BASELINE))
            middle = statistics.median(values)
            row = {"server": job.config.label, "app": job.app, "method": method, "instructions": middle}
            row["spread_pct"] = 100 * (max(values) - min(values)) / middle
            if reference is not None and job.app != BASELINE:
                base = statistics.median(reference["values"][method])
                row["vs_baseline_pct"] = 100 * (middle / base - 1)
            rows.append(row)
    return rows


def server_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {f"ctxbench_version_{kind.distribution}": version(kind.distribution) for kind in servers.KINDS.values()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", action="append", choices=sorted(servers.BY_LABEL), help="default: every kind")
    parser.add_argument("--app", action="append", choices=apps(), help="default: baseline, its A/A, the approaches")
    parser.add_argument(
        "--parallel", type=positive_int(MAX_PROCESSES), default=2, help="callgrind processes side by side"
    )
    parser.add_argument("--results-dir", type=output_dir, default=RESULTS_DIR, help="where the pyperf JSON goes")


def measure_all(jobs: list[Job], parallel: int, out: Path, environment: dict) -> dict:
    """Every job under callgrind, `parallel` at a time; each count written to `out`, the run's record last."""
    versions = server_versions()
    started = time.perf_counter()
    results: dict[Job, dict] = {}
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ctxbench-server-cg-") as tmp:
        directories = {job: Path(tmp) / f"{job.config.label}-{job.app}" for job in jobs}
        for directory in directories.values():
            directory.mkdir()
        with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
            futures = {pool.submit(measure, job, directories[job]): job for job in jobs}
            for future in concurrent.futures.as_completed(futures):
                job = futures[future]
                try:
                    results[job] = future.result()
                except MeasurementBroken as error:  # one broken server must not void the others' counts
                    failed[f"{job.config.label} {job.app}"] = str(error)[-1500:]
                    print(f"FAILED {job.config.label} {job.app}: {error}", file=sys.stderr, flush=True)
                    continue
                path = write(job, results[job], out, versions)
                seconds = results[job]["seconds"]
                print(f"{job.config.label} {job.app}: {results[job]['values']} ({seconds:.0f}s) -> {path}", flush=True)
    rows = summary_rows({job: results[job] for job in jobs if job in results})  # in the order asked for
    run_data = {"counter": COUNTER, "leaves_out": LEAVES_OUT, "seconds": round(time.perf_counter() - started, 1)}
    run_data["environment"] = environment
    run_data["failed"] = failed
    run_data |= {"short": SHORT, "long": LONG, "blocks": BLOCKS, "warmup": WARMUP_REQUESTS, "idle_s": IDLE_S}
    run_data |= {
        "rows": rows,
        "segments": {f"{job.config.label} {job.app}": found["segments"] for job, found in results.items()},
    }
    write_json(out / RUN_NAME, run_data)
    return run_data


def run(args: argparse.Namespace) -> int:
    if shutil.which("valgrind") is None:
        print("server-instructions: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    chosen = [servers.get(label) for label in (args.server or DEFAULT_SERVERS)]
    jobs = [Job(config, app) for config in chosen for app in (args.app or apps())]
    environment = describe({"servers": [config.label for config in chosen], "apps": args.app or apps()})
    print(f"waiting for the machine lock ({len(jobs)} server processes under callgrind)...", flush=True)
    # Staged, swap (scripts.common.staged): the directory is this command's alone and its run.json compares the apps
    # of one run with each other, so a run replaces the whole directory, and only once every server was counted.
    with exclusive_run(), staged_run(args.results_dir) as stage:
        run_data = measure_all(jobs, args.parallel, stage.dir, environment)
        if run_data["failed"]:
            stage.fail(f"{len(run_data['failed'])} of {len(jobs)} server processes failed")
    rows = run_data["rows"]
    for row in rows:
        versus = f"{row['vs_baseline_pct']:+.3f}%" if "vs_baseline_pct" in row else "(reference)"
        where = f"{row['server']:20} {row['app']:22} {row['method']:5}"
        print(f"{where} {row['instructions']:12.0f} spread {row['spread_pct']:.3f}% {versus}")
    print(f"total {run_data['seconds']:.0f}s; {len(run_data['failed'])} of {len(jobs)} failed")
    return 1 if run_data["failed"] else 0
