"""HTTP/2 cells (`ctxbench sweep --mode h2`): many streams of different identities multiplexed on one connection.

Targets as data: hypercorn and granian serving HTTP/2 themselves, with prior knowledge on plain TCP (h2c) and by ALPN
under TLS (a certificate generated for the run), and nginx terminating HTTP/2 (TLS) before each server over HTTP/1.1
keep-alive. Each response is judged by the checker; a leaked value traced to another client id is another stream's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ssl
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from apps.harness import registry
from apps.harness.checker import Failure
from apps.harness.contract import HEALTH_PATH
from apps.harness.origin import OTHER_CLIENT
from ctxbench.serving.tls import HTTP1, Certificate, generate
from loadtests import multiplex
from scripts.common.environment import describe
from scripts.common.lock import exclusive_run
from scripts.common.results import LOAD_DIR, write_json
from scripts.load import fronts
from scripts.load import servers as serverconfig
from scripts.load.process import Managed, NotServing, free_port, fronting, server_command, wait_answering
from scripts.load.settings import FRONT_CPUS, H2_ROUNDS, H2_STREAMS, HOST, SERVER_CPUS

H2C, TLS = "h2c", "tls"
KIND = "h2"  # the result files' kind (loadstats reads only runs with a "run" and the side-by-side rounds)
TLS_OPTIONS = {  # per server kind: how it is given the run's certificate and key
    "hypercorn": ("--certfile", "{cert}", "--keyfile", "{key}"),
    "granian": ("--ssl-certificate", "{cert}", "--ssl-keyfile", "{key}"),
}


@dataclass(frozen=True, slots=True)
class Target:
    config: serverconfig.ServerConfig
    transport: str  # H2C or TLS: how the client reaches HTTP/2
    front: fronts.Front = fronts.DIRECT_FRONT

    @property
    def label(self) -> str:
        via = "" if self.front.is_direct else f"-via-{self.front.label}"
        return f"{self.config.label}-{self.transport}{via}"


SERVING_H2 = (serverconfig.HYPERCORN_ASYNCIO, serverconfig.GRANIAN)
BEHIND_NGINX = (
    serverconfig.UVLOOP_HTTPTOOLS,
    serverconfig.UVLOOP_HTTPTOOLS_RESET,
    serverconfig.GUNICORN,
    serverconfig.HYPERCORN_ASYNCIO,
    serverconfig.GRANIAN,
    serverconfig.DAPHNE,
)
TARGETS: tuple[Target, ...] = (
    *(Target(config, transport) for config in SERVING_H2 for transport in (H2C, TLS)),
    *(Target(config, TLS, fronts.NGINX_H2) for config in BEHIND_NGINX),
)


def with_tls(config: serverconfig.ServerConfig, certificate: Certificate) -> serverconfig.ServerConfig:
    paths = {"cert": str(certificate.cert), "key": str(certificate.key)}
    options = tuple(option.format(**paths) for option in TLS_OPTIONS[config.kind])
    return dataclasses.replace(config, options=(*config.options, *options))


@contextlib.contextmanager
def serving(target: Target, variant: registry.Variant) -> Iterator[tuple[str, ssl.SSLContext | None, dict]]:
    """The URL the client multiplexes on, its TLS context, and what served it; everything stopped by PID on exit
    (the dict's `pids`, filled in on exit: every process the server and the front were seen to have)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ctxbench-h2-") as tmp:
        direct_tls = target.transport == TLS and target.front.is_direct
        certificate = generate(Path(tmp), HOST) if direct_tls else None
        config = with_tls(target.config, certificate) if certificate else target.config
        scheme = "https" if certificate else "http"
        server = Managed(server_command(variant, config, port), SERVER_CPUS, Path(tmp) / "server.log")
        context = certificate.client_context() if certificate else None
        health = certificate.client_context(HTTP1) if certificate else None
        served: dict[str, object] = {"server": {"label": target.config.label, "command": server.command}}
        front_process: Managed | None = None
        try:
            try:
                wait_answering(server, f"{scheme}://{HOST}:{port}{HEALTH_PATH}", context=health)
            except NotServing as error:
                raise RuntimeError(f"{target.label}: {error}:\n{server.log_tail()}") from None
            server.processes()
            with fronting(target.front, port, FRONT_CPUS) as fronted:
                if fronted.certificate is not None:
                    context = fronted.certificate.client_context()
                url = fronted.url if not target.front.is_direct else f"{scheme}://{HOST}:{port}"
                served["front"] = fronted.as_dict()
                front_process = fronted.process
                yield url, context, served
        finally:
            front_pids = list(front_process.seen) if front_process is not None else []  # stopped with its block
            served["pids"] = sorted({*server.stop(), *front_pids})


def cell(variant: str, target: Target, streams: int = H2_STREAMS, rounds: int = H2_ROUNDS) -> dict[str, object]:
    """One variant on one target: `rounds` rounds of `streams` concurrent streams on one connection, judged."""
    started = time.monotonic()
    with serving(target, registry.get(variant)) as (url, context, served):
        outcomes = multiplex.run(url, [multiplex.streams(streams) for _ in range(rounds)], context)
    pids = served.pop("pids")
    failures: Counter[str] = Counter(name for outcome in outcomes for name in outcome.names)
    origins: Counter[str] = Counter(origin for outcome in outcomes for origin in outcome.origins)
    run = {"variant": variant, "target": target.label, "transport": target.transport, "streams": streams}
    return {
        "kind": KIND,
        "run": run | {"rounds": rounds, "server": target.config.as_dict(), "front": target.front.as_dict()},
        "requests": len(outcomes),
        "http_versions": dict(Counter(outcome.http_version for outcome in outcomes)),
        "failures": dict(failures),
        "leak": sum(n for name, n in failures.items() if Failure.parse(name).is_leak),
        "lost": sum(n for name, n in failures.items() if Failure.parse(name).is_lost),
        # startup values out of sight (the app's import-time Context not used): counted apart, not a leak or a loss
        "dropped": sum(n for name, n in failures.items() if Failure.parse(name).is_dropped),
        "other": sum(n for name, n in failures.items() if not Failure.parse(name).judged),
        "origins": dict(origins),
        "cross_stream": origins[OTHER_CLIENT],  # responses that carried another stream's identity
        "seconds": time.monotonic() - started,
        **served,
        "processes": {"started": pids, "left_behind": [pid for pid in pids if _alive(pid)]},
    }


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def one_line(result: dict) -> str:
    run = result["run"]
    versions = ",".join(f"{name}×{n}" for name, n in result["http_versions"].items())
    return (
        f"{run['variant']:<22} {run['target']:<40} leak={result['leak']} cross_stream={result['cross_stream']} "
        f"lost={result['lost']} other={result['other']} of {result['requests']} ({versions})"
    )


def save(result: dict) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    return write_json(LOAD_DIR / "h2" / f"{stamp}-{result['run']['variant']}-{result['run']['target']}.json", result)


def run_all(variants: tuple[str, ...], labels: list[str] | None, dry_run: bool) -> int:
    """Every variant on every target (or the targets whose server label is in `labels`); a missing nginx skips."""
    chosen = [t for t in TARGETS if not labels or t.config.label in labels]
    errors = 0
    for target in chosen:
        missing = target.front.missing()
        for variant in variants:
            if dry_run or missing:
                skip = f" SKIPPED ({missing})" if missing else ""
                print(f"h2 {variant} {target.label} {H2_ROUNDS}x{H2_STREAMS} streams{skip}")
                continue
            try:
                with exclusive_run():
                    result = cell(variant, target)
                result["environment"] = describe(result["run"])
                print(f"{one_line(result)}  -> {save(result).name}", flush=True)
            except (RuntimeError, OSError, httpx.HTTPError) as error:  # one broken cell must not lose the rest
                errors += 1
                print(f"ERROR h2 {variant} {target.label}: {error}", file=sys.stderr, flush=True)
    return 1 if errors else 0
