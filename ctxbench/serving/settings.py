"""Where servers run and how long they get: the host, the cores, the start and stop timeouts (probe and suite alike)."""

from __future__ import annotations

import os

HOST = "127.0.0.1"  # the only address that ever receives load

# Two cores here: the server gets the last one, the load generator (and this orchestrator) the others.
_ALL_CPUS = sorted(os.sched_getaffinity(0))
SERVER_CPUS: tuple[int, ...] = tuple(_ALL_CPUS[-1:])
GENERATOR_CPUS: tuple[int, ...] = tuple(_ALL_CPUS[:-1]) or SERVER_CPUS
# A reverse proxy in front (ctxbench/serving/fronts.py) runs on the generator's cores, not the server's: in production
# it runs on other cores or hosts than the app, in parallel with it, so the app's core stays the app's alone and its
# CPU per request is still the server's own; the proxy's CPU is recorded apart (cpu.front_s).
FRONT_CPUS: tuple[int, ...] = GENERATOR_CPUS

HEALTH_TIMEOUT_S = 20.0
HEALTH_POLL_S = 0.02  # between health probes while a server starts (was 0.05: up to 50 ms lost per run)
STOP_TIMEOUT_S = 10.0  # graceful stop (SIGINT) before SIGKILL
