"""One bounded load run: a pinned server of any kind (behind a front, if any), a pinned locust, CPU sampled."""

from __future__ import annotations

import copy
import datetime as dt
import importlib.metadata
import math
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from apps.harness import registry
from apps.harness.checker import Failure
from apps.harness.contract import HEALTH_PATH
from apps.harness.origin import OTHER_CLIENT
from loadtests import scenarios
from scripts.common.environment import ROOT, describe
from scripts.common.results import LOAD_DIR, read_json, write_json
from scripts.load.fronts import DIRECT_FRONT, Front
from scripts.load.process import Fronted, Managed, free_port, fronting, serve
from scripts.load.sampler import Sampler, own_cpu_seconds
from scripts.load.servers import DEFAULT, ServerConfig
from scripts.load.settings import (
    FRONT_CPUS,
    GENERATOR_BOUND_SHARE,
    GENERATOR_CPUS,
    HOST,
    LOCUST_GRACE_S,
    SERVER_CPUS,
)

LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99}
SCHEMA = 1  # bump when a field changes meaning, so summaries never mix methodologies
WATCH_S = 0.02  # how often a waiting run checks that its generator and its server are still there


class ServerExited(RuntimeError):
    """The server died during a run: the run fails instead of recording refused connections as its result."""


@dataclass(frozen=True)
class RunSpec:
    variant: str
    scenario: str
    users: int
    duration_s: float
    warmup_s: float
    config: ServerConfig = DEFAULT
    rate_per_s: float = 0.0  # total fixed rate over all users; 0 = closed loop (as fast as the server answers)
    validate: bool = True
    processes: int = 1
    tag: str = ""  # which sweep or mode produced the run
    # > 0: the generator stops once every scenario cell has a downstream leak or this many requests (the leak
    # hunt, scripts.load.hunt), and starts while the server starts, waiting for its health answer itself
    stop_at: int = 0
    # with stop_at: a clean run also needs this many requests over all its cells (its share of an (approach, server
    # kind) pair's target, scripts.load.hunt.with_pair_targets); the cheap cells carry most of it
    stop_total: int = 0
    front: Front = DIRECT_FRONT  # what the clients connect to: the server itself, or a reverse proxy before it

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "config": self.config.as_dict(), "front": self.front.as_dict()}


def locust_command(spec: RunSpec, port: int, workdir: Path) -> list[str]:
    run_time = math.ceil(spec.warmup_s + spec.duration_s)  # locust's -t takes whole seconds
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", f"http://{HOST}:{port}"]
    command += ["--headless", "-u", str(spec.users), "-r", str(spec.users), "-t", f"{run_time}s"]
    command += ["--only-summary", "--loglevel", "WARNING", "--json-file", str(workdir / "locust")]
    command += ["--ctx-scenario", spec.scenario, "--ctx-warmup", str(spec.warmup_s)]
    command += ["--ctx-record", str(workdir / "record"), "--ctx-rate", str(spec.rate_per_s / spec.users)]
    if not spec.validate:
        command.append("--ctx-skip-validation")
    if spec.stop_at > 0:
        command += ["--ctx-stop-at", str(spec.stop_at), "--ctx-wait-for", f"http://{HOST}:{port}{HEALTH_PATH}"]
        command += ["--ctx-stop-total", str(spec.stop_total)] if spec.stop_total > 0 else []
    if spec.processes > 1:
        command += ["--processes", str(spec.processes)]
    return command


def percentiles(latencies: list[float]) -> dict[str, float | None]:
    """Nearest-rank percentiles of the exact latencies (ms), and the maximum."""
    ordered = sorted(latencies)
    if not ordered:
        return {name: None for name in (*PERCENTILES, "max")}
    result: dict[str, float | None] = {
        name: ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] for name, q in PERCENTILES.items()
    }
    result["max"] = ordered[-1]
    return result


def merge(records: list[dict], buckets: tuple[str, ...], scenario: str | None = None) -> dict[str, object]:
    """Counts over the given phases of every process's record (of one scenario's share, when given)."""
    failures: Counter[str] = Counter()
    origins: Counter[str] = Counter()
    requests = failed = 0
    for record in records:
        phases = record["buckets"] if scenario is None else record.get("by_scenario", {}).get(scenario)
        for name in buckets if phases else ():
            bucket = phases[name]
            requests += bucket["requests"]
            failed += bucket["failed_requests"]
            failures.update(bucket["failures"])
            origins.update(bucket.get("origins", {}))  # records written before the origin judge have none
    return {
        "requests": requests,
        "failed_requests": failed,
        "failures": dict(failures),
        "leak": sum(n for name, n in failures.items() if Failure.parse(name).is_leak),
        "lost": sum(n for name, n in failures.items() if Failure.parse(name).is_lost),
        # startup values out of sight (the app's import-time Context not used): counted apart, not a leak or a loss
        "dropped": sum(n for name, n in failures.items() if Failure.parse(name).is_dropped),
        "other": sum(n for name, n in failures.items() if not Failure.parse(name).judged),
        # requests whose leaked values came from another client connection / the same one / could not be told
        "origins": dict(origins),
        "cross_client": origins[OTHER_CLIENT],
    }


def locust_totals(path: Path) -> dict[str, int] | None:
    """Locust's own counts from --json-file (kept to cross-check the record; absent if locust died)."""
    if not path.exists():
        return None
    entries = read_json(path) if path.stat().st_size else []
    return {
        "requests": sum(entry["num_requests"] for entry in entries),
        "failures": sum(entry["num_failures"] for entry in entries),
    }


@dataclass
class Generator:
    """A locust process pinned to the generator cores, driving one server; read back after it has stopped."""

    spec: RunSpec
    port: int
    workdir: Path
    process: Managed | None = None
    returncode: int | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def command(self) -> list[str]:
        return locust_command(self.spec, self.port, self.workdir)

    def start(self) -> Generator:
        self.process = Managed(self.command, GENERATOR_CPUS, self.workdir / "locust.log")
        return self

    def wait(self, server: Managed | None = None) -> None:
        """Until locust stops by itself (its -t), at most LOCUST_GRACE_S longer; then it is stopped by PID.

        A `server` that exits meanwhile ends the run at once with ServerExited: locust would go on counting refused
        connections until its -t, and the run would look like a result.
        """
        assert self.process is not None
        deadline = time.monotonic() + self.spec.warmup_s + self.spec.duration_s + LOCUST_GRACE_S
        try:
            while (code := self.process.process.poll()) is None and time.monotonic() < deadline:
                if server is not None and server.process.poll() is not None:
                    code = server.process.returncode
                    raise ServerExited(f"the server exited with {code} during the run:\n{server.log_tail()}")
                time.sleep(WATCH_S)
            self.returncode = code  # None: it overran its bound, stopped below, recorded as exit code null
        finally:
            self.stop()

    def stop(self) -> None:
        """Idempotent; also the clean-up path on Ctrl-C or any error."""
        if self.process is not None:
            self.pids = self.process.stop()

    def records(self) -> list[dict]:
        return [read_json(path) for path in sorted(self.workdir.glob("record.*.json"))]


def window_of(records: list[dict]) -> tuple[float, float]:
    starts = [r["window"]["start"] for r in records if r["window"]["start"] is not None]
    ends = [r["window"]["end"] for r in records if r["window"]["end"] is not None]
    if not starts or not ends:
        raise RuntimeError("the generator wrote no measured window (did locust start?)")
    return min(starts), max(ends)


def result_of(
    spec: RunSpec,
    generator: Generator,
    server: Managed,
    fronted: Fronted,
    cpu: dict[str, float],
    window: tuple[float, float],
):
    """Everything one run measured, from the exact records and the CPU counters over the window."""
    records = generator.records()
    measured = merge(records, ("measured",))
    everything = merge(records, ("warmup", "measured", "after"))
    seconds = window[1] - window[0]
    requests = measured["requests"]
    latencies = [value for record in records for value in record["buckets"]["measured"]["latencies_ms"]]
    client_cpu = sum(record["window"]["cpu_s"] or 0.0 for record in records)
    machine_busy = sum(value for name, value in cpu.items() if name.startswith("core"))
    ours = cpu["server"] + cpu["generator"] + cpu["orchestrator"] + cpu["front"]
    generator_share = cpu["generator"] / (seconds * len(GENERATOR_CPUS)) if seconds > 0 else None
    per_request = lambda s: s / requests * 1e6 if requests else None  # noqa: E731 - local shorthand
    return {
        "schema": SCHEMA,
        "run": spec.as_dict(),
        "variant_category": registry.get(spec.variant).category,
        "latency_model": "fixed-rate" if spec.rate_per_s > 0 else "closed-loop",
        "window": {"start": window[0], "end": window[1], "seconds": seconds},
        "requests": requests,
        "rps": requests / seconds if seconds > 0 else None,
        "latency_ms": percentiles(latencies),
        "failures_measured": measured,
        "failures_total": everything,  # warm-up included: a leak there is a leak too
        "cpu": {
            "server_s": cpu["server"],
            "server_us_per_request": per_request(cpu["server"]),
            "generator_s": cpu["generator"],
            "generator_share_of_its_cores": generator_share,
            "generator_bound": generator_share is not None and generator_share >= GENERATOR_BOUND_SHARE,
            "client_us_per_request": per_request(client_cpu),  # locust processes' own clocks, validation included
            "orchestrator_s": cpu["orchestrator"],
            "front_s": cpu["front"],  # the reverse proxy's, on FRONT_CPUS (0 when direct)
            "front_cpus": list(FRONT_CPUS),
            "others_s": max(0.0, machine_busy - ours),
            "server_core_busy_s": sum(cpu[f"core{core}"] for core in SERVER_CPUS),
            "server_cpus": list(SERVER_CPUS),
            "generator_cpus": list(GENERATOR_CPUS),
        },
        "locust": {
            "exit_code": generator.returncode,
            "totals": locust_totals(generator.workdir / "locust.json"),
        },
        "server": server_identity(spec.config, server.command),
        "front": fronted.as_dict(),  # label, kind, version, command and the config file's text
        "commands": {"server": server.command, "generator": generator.command},
    }


def server_identity(config: ServerConfig, command: list[str]) -> dict[str, object]:
    """What served the run: kind, label, the server package's version, the exact command line."""
    try:
        version = importlib.metadata.version(config.server.distribution)
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"kind": config.kind, "label": config.label, "version": version, "command": command}


def split_by_scenario(result: dict[str, object], records: list[dict]) -> list[dict[str, object]]:
    """One result per scenario of an EACH run: its own counts, the shared window, server and environment.

    Per-request CPU and latency percentiles belong to the whole run (the scenarios shared the server and the
    generator), so the per-scenario results leave them out rather than attribute them.
    """
    scenarios_seen = sorted({name for record in records for name in record.get("by_scenario", {})})
    seconds = result["window"]["seconds"]
    cells = []
    for scenario in scenarios_seen:
        cell = copy.deepcopy(result)
        measured = merge(records, ("measured",), scenario)
        cell["run"]["scenario"] = scenario
        cell["run"]["driven_with"] = scenarios.EACH  # one generator drove every scenario at once
        cell["requests"] = measured["requests"]
        cell["rps"] = measured["requests"] / seconds if seconds > 0 else None
        cell["latency_ms"] = percentiles([])
        cell["failures_measured"] = measured
        cell["failures_total"] = merge(records, ("warmup", "measured", "after"), scenario)
        cell["cpu"]["server_us_per_request"] = None
        cell["cpu"]["client_us_per_request"] = None
        cells.append(cell)
    return cells


def execute(spec: RunSpec, python: str = sys.executable) -> dict[str, object]:
    """Serve, drive, measure, stop everything by PID, prove nothing is left. The caller holds the machine lock.

    `python` runs the server only (the version matrix serves from a stack's virtualenv); locust is always ours.
    """
    variant = registry.get(spec.variant)
    if spec.scenario not in (*scenarios.SCENARIOS, scenarios.EACH):
        raise ValueError(f"unknown scenario {spec.scenario!r}; known: {', '.join(scenarios.SCENARIOS)}")
    port = free_port()
    stamps = {"start": time.time()}
    with tempfile.TemporaryDirectory(prefix="ctxbench-load-") as tmp:
        # A hunt run (stop_at) starts its generator while the server starts: it waits for the health answer itself,
        # through the front when there is one (its port is chosen here, before the front starts). Locust speaks plain
        # HTTP to its host, so a TLS front's clients start after it.
        front_port = port if spec.front.is_direct else free_port()
        early_ok = spec.stop_at > 0 and not spec.front.tls
        generator = Generator(spec, front_port, Path(tmp)) if early_ok else None
        early = generator.start if generator is not None else None
        try:
            # a hunt run reads nothing from the server after its generator stopped: no graceful shutdown
            graceful = spec.stop_at == 0
            with (
                serve(variant, spec.config, port, SERVER_CPUS, python, on_started=early, graceful=graceful) as server,
                fronting(spec.front, port, FRONT_CPUS, port=front_port) as fronted,
            ):
                stamps["server_healthy"] = time.time()
                if generator is None:
                    generator = Generator(spec, fronted.port, Path(tmp))
                try:
                    if early is None:
                        generator.start()
                    probes = {"server": server.cpu_seconds, "generator": generator.process.cpu_seconds}
                    probes |= {"orchestrator": own_cpu_seconds, "front": fronted.cpu_seconds}
                    with Sampler(probes) as sampler:
                        generator.wait(server)
                    stamps["generator_exited"] = time.time()
                finally:
                    generator.stop()  # before the server: a generator never outlives what it drives
                exited = server.process.poll()  # before we stop it: not None means the server died during the run
        finally:
            if generator is not None:
                generator.stop()  # also when the server never answered after an early start
        stamps["stopped"] = time.time()
        records = generator.records()
        window = window_of(records)
        result = result_of(spec, generator, server, fronted, sampler.between(*window), window)
    started = server.seen.keys() | set(generator.pids) | (fronted.process.seen.keys() if fronted.process else set())
    result["processes"] = {
        "started": sorted(started),
        "left_behind": sorted(pid for pid in started if psutil.pid_exists(pid) and _alive(pid)),
    }
    result["server_exited"] = exited
    result["environment"] = describe(spec.as_dict())
    result["timing"] = timing(stamps, records)
    if spec.scenario == scenarios.EACH:
        result["cells"] = split_by_scenario(result, records)
    return result


def timing(stamps: dict[str, float], records: list[dict]) -> dict[str, object]:
    """Where the run's wall time went: server start-up, generator start-up beyond it, load, stopping everything."""
    users_started = min((r["test_started"] for r in records if r.get("test_started")), default=None)
    exited = stamps.get("generator_exited", stamps["stopped"])
    return {
        "server_start_s": round(stamps["server_healthy"] - stamps["start"], 3),
        "until_users_s": None if users_started is None else round(users_started - stamps["start"], 3),
        "load_s": None if users_started is None else round(exited - users_started, 3),
        "stop_s": round(stamps["stopped"] - exited, 3),
        "total_s": round(stamps["stopped"] - stamps["start"], 3),
        "stopped_early": any(r.get("stopped_early") for r in records),
    }


def cells_of(result: dict[str, object]) -> list[dict[str, object]]:
    """The results to save: the run itself, or one per scenario when it drove every scenario at once."""
    return result.get("cells") or [result]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def save(result: dict[str, object], directory: Path = LOAD_DIR) -> Path:
    run = result["run"]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    front = run.get("front", {}).get("label", DIRECT_FRONT.label)
    via = "" if front == DIRECT_FRONT.label else f"-via-{front}"
    name = f"{stamp}-{run['variant']}-{run['scenario']}-{run['config']['label']}{via}-u{run['users']}.json"
    return write_json(directory / name, result)


def one_line(result: dict) -> str:
    run, cpu, lat = result["run"], result["cpu"], result["latency_ms"]
    total = result["failures_total"]
    flag = " GENERATOR-BOUND" if cpu["generator_bound"] else ""
    p99 = f"{lat['p99']:.2f}" if lat["p99"] is not None else "-"
    server_us = f"{cpu['server_us_per_request']:.0f}" if cpu["server_us_per_request"] is not None else "-"
    front = run.get("front", {}).get("label", DIRECT_FRONT.label)
    return (
        f"{run['variant']:<22} {run['scenario']:<8} {run['config']['label']:<24} front={front:<16} "
        f"u={run['users']:<3} rps={result['rps'] or 0:8.0f} p99={p99}ms server={server_us}us/req "
        f"leak={total['leak']} cross_client={total.get('cross_client', 0)} lost={total['lost']} "
        f"other={total['other']} of {total['requests']}{flag}"
    )
