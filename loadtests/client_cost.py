"""The load client's own instructions per request, judging responses and not, counted under callgrind.

Why: `make sweep MODE=client` compares the client's CPU per request with and without judging in 6-second load runs on
a shared host whose speed moves by up to 2.5x; it cannot say where a difference goes. Here the same code path a locust
user runs (`ContractUser.one_request`: locust's FastHttpSession, the request event and its listeners, the recorder,
`validation.judge`) is driven in one process under `valgrind --tool=callgrind` against a real server on 127.0.0.1
(started outside callgrind: only the client is counted). Segments of `--requests` requests alternate judging on and
off (`--ctx-skip-validation`), delimited by `os.getppid()` markers as in microbench/bm_instructions.py; a second kind
of segment judges stored responses alone (the same geventhttpclient headers and bodies the client received), so the
judge's own share is separated from everything a request costs the client.

What the counts leave out: the kernel's socket work, waiting for the server, gevent's hub switches cost instructions
but sleeping does not; cache misses. The ratio judged / client per request is the figure the 5% target is about.

    python -m loadtests.client_cost --requests 100 --blocks 2 --output results/bench/client_judging/instructions.json
    python -m loadtests.client_cost --profile 3000          # cProfile of the judging client, no callgrind
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import pyperf

from apps.harness import registry

REQUESTS = 200  # per segment
BLOCKS = 2  # pairs of (judged, not judged) segments, in alternating order
WARMUP_REQUESTS = 50
HASH_SEED = "0"
(VARIANT,) = registry.tagged(registry.CLIENT_LOAD)  # a full all-ok response: the checker judges every field
MARKER_FUNCTION = "getppid"
DISCARD = "-"
JUDGED, SKIPPED, JUDGE_ONLY, JUDGE_SKIPPED = "client_judged", "client_not_judged", "judge_only", "judge_skipped"
SERVER_START_S = 30.0
COUNTER = "callgrind Ir (instructions executed by the load client, every thread)"


class MeasurementBroken(RuntimeError):
    """callgrind wrote another number of dumps than the worker made segments, or the server did not answer."""


def marker() -> None:
    os.getppid()  # callgrind dumps (and zeroes) its counters right before this reaches libc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    """uvicorn's default configuration serving the client-load variant, outside callgrind (it is not counted)."""
    command = [sys.executable, "-m", "uvicorn", f"{registry.get(VARIANT).module}:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    server = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if server.poll() is not None:
                tail = server.stderr.read().decode()[-2000:]
                raise MeasurementBroken(f"server exited {server.returncode}: {tail}") from None
            time.sleep(0.2)
    stop_server(server)
    raise MeasurementBroken(f"server did not listen on port {port} within {SERVER_START_S}s")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


def locust_options() -> argparse.Namespace:
    """Every option the locustfile defines, at its default, then what this count fixes: one the locustfile adds later
    reaches here too (a hand-built Namespace missed --ctx-stop-at and failed at the first request)."""
    from loadtests import locustfile, scenarios

    parser = argparse.ArgumentParser()
    locustfile.add_options(parser)
    options = parser.parse_args([])
    options.ctx_scenario = scenarios.GET
    options.ctx_anonymous_share = 0.0
    return options


class Client:
    """One locust ContractUser (GET scenario) as `locust` runs it, its request listener and recorder included."""

    def __init__(self, port: int) -> None:
        from locust.env import Environment

        from loadtests import locustfile

        self.options = locust_options()
        self.module = locustfile
        env = Environment(user_classes=[locustfile.ContractUser], parsed_options=self.options)
        env.events.request.add_listener(locustfile.RECORDER.on_request)
        locustfile.ContractUser.host = f"http://127.0.0.1:{port}"
        self.user = locustfile.ContractUser(env)
        self.user.on_start()

    def run(self, requests: int, judged: bool) -> None:
        self.options.ctx_skip_validation = not judged
        for _ in range(requests):
            self.user.one_request()

    def capture(self, requests: int) -> list[tuple]:
        """`requests` responses as the client received them: (spec, status, headers, body) for judge-only segments."""
        # the locustfile judges through `assess` (failure names and origins): wrapped where the locustfile looks it up
        captured, original = [], self.module.assess

        def keep(spec: object, status: int, headers: object, body: bytes, validate: bool) -> tuple:
            captured.append((spec, status, headers, body))
            return original(spec, status, headers, body, validate)

        self.module.assess = keep
        try:
            self.run(requests, True)
        finally:
            self.module.assess = original
        failed = [item for item in captured if original(*item, True)[0]]
        if failed:
            raise MeasurementBroken(f"{len(failed)} of {len(captured)} responses were not all ok: nothing to time")
        return captured


def judge_all(responses: list[tuple], validate: bool) -> None:
    from loadtests.validation import judge

    for spec, status, headers, body in responses:
        judge(spec, status, headers or {}, body or b"", validate)


def worker(requests: int, blocks: int, plan: Path) -> None:
    port = free_port()
    server = start_server(port)
    labels: list[str] = []
    try:
        client = Client(port)
        client.run(WARMUP_REQUESTS, True)
        client.run(WARMUP_REQUESTS, False)
        responses = client.capture(requests)
        judge_all(responses, True)
        for block in range(blocks):
            # alternate which goes first, so neither always follows the other
            order = (True, False) if block % 2 == 0 else (False, True)
            for judged in order:
                client.run(1, judged)
                gc.collect()
                marker()
                labels.append(DISCARD)
                client.run(requests, judged)
                marker()
                labels.append(JUDGED if judged else SKIPPED)
            for judged in order:
                gc.collect()
                marker()
                labels.append(DISCARD)
                judge_all(responses, judged)
                marker()
                labels.append(JUDGE_ONLY if judged else JUDGE_SKIPPED)
    finally:
        stop_server(server)
    plan.write_text(json.dumps({"labels": labels}))


def dump_total(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise MeasurementBroken(f"{path}: no summary line")


def measure(requests: int, blocks: int) -> dict[str, list[float]]:
    """label -> instructions per request of every segment, in order."""
    with tempfile.TemporaryDirectory(prefix="ctxbench-client-cost-") as tmp:
        out, plan = Path(tmp) / "cg.out", Path(tmp) / "plan.json"
        command = ["valgrind", "--tool=callgrind", f"--dump-before={MARKER_FUNCTION}", "--dump-line=no"]
        command += [f"--callgrind-out-file={out}", sys.executable, "-m", "loadtests.client_cost"]
        command += ["--worker-plan", str(plan), "--requests", str(requests), "--blocks", str(blocks)]
        env = os.environ | {"PYTHONHASHSEED": HASH_SEED}
        result = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise MeasurementBroken(f"worker exited {result.returncode}:\n{result.stderr[-3000:]}")
        labels = json.loads(plan.read_text())["labels"]
        dumps = sorted(Path(tmp).glob("cg.out.*"), key=lambda path: int(path.suffix[1:]))
        if len(dumps) != len(labels):
            raise MeasurementBroken(f"{len(dumps)} callgrind dumps for {len(labels)} markers")
        found: dict[str, list[float]] = {}
        for label, dump in zip(labels, dumps, strict=True):
            if label != DISCARD:
                found.setdefault(label, []).append(dump_total(dump) / requests)
        return found


def write(found: dict[str, list[float]], output: Path, requests: int) -> dict[str, float]:
    """pyperf file (unit integer: instructions per request), one benchmark per segment kind; return the figures.

    Keep it out of results/bench/*.json: the bench summary reads every file there as a CPU-time benchmark.
    """
    metadata = {"unit": "integer", "loops": requests, "ctxbench_counter": COUNTER, "ctxbench_variant": VARIANT}
    metadata |= {f"ctxbench_version_{name}": version(name) for name in ("locust", "geventhttpclient", "uvicorn")}
    benchmarks = [
        pyperf.Benchmark([pyperf.Run(values, warmups=None, metadata=metadata | {"name": name}, collect_metadata=True)])
        for name, values in sorted(found.items())
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.tmp")  # atomically: a reader never sees half a file
    pyperf.BenchmarkSuite(benchmarks).dump(str(partial), replace=True)
    os.replace(partial, output)
    return summarize(found)


def summarize(found: dict[str, list[float]]) -> dict[str, float]:
    """Medians per segment kind, the judged-minus-not-judged difference and the judge's share of the client."""
    median = {name: statistics.median(values) for name, values in found.items()}
    judging = median[JUDGE_ONLY] - median[JUDGE_SKIPPED]
    return {
        "client_judged": median[JUDGED],
        "client_not_judged": median[SKIPPED],
        "difference_per_request": median[JUDGED] - median[SKIPPED],
        "difference_pct": 100 * (median[JUDGED] / median[SKIPPED] - 1),
        "judge_alone_per_response": judging,
        "judge_share_of_client_pct": 100 * judging / median[JUDGED],
    }


def profile(requests: int) -> None:
    """cProfile of `requests` judged requests then as many not judged (no callgrind): where the client's time goes."""
    port = free_port()
    server = start_server(port)
    try:
        client = Client(port)
        client.run(WARMUP_REQUESTS, True)
        for judged in (True, False):
            profiler = cProfile.Profile()
            started = time.process_time()
            profiler.runcall(client.run, requests, judged)
            spent = time.process_time() - started
            print(f"--- judged={judged}: {1e6 * spent / requests:.1f} us CPU per request under cProfile")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
    finally:
        stop_server(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--blocks", type=int, default=BLOCKS)
    parser.add_argument("--output", type=Path, default=None, help="pyperf JSON of the counts")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile N requests instead")
    parser.add_argument("--worker-plan", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.requests < 1 or args.blocks < 1:
        parser.error("--requests and --blocks must be at least 1")
    if args.worker_plan:
        worker(args.requests, args.blocks, args.worker_plan)
        return 0
    if args.profile:
        profile(args.profile)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: instruction counts need callgrind", file=sys.stderr)
        return 2
    started = time.perf_counter()
    found = measure(args.requests, args.blocks)
    figures = write(found, args.output, args.requests) if args.output else summarize(found)
    print(json.dumps({"segments": found, **figures, "seconds": round(time.perf_counter() - started, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
