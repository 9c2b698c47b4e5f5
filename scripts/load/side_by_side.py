"""Side-by-side cost: many servers at once on the server core, each with its own generator, one window.

Separate runs are not comparable on a shared machine (throughput moved 13-112% between repeats here), so costs are
measured while every server shares the same core at the same time. Two layouts:
- `variants`: every variant on uvicorn's default configuration;
- `servers`: SERVER_COST_VARIANTS on every server kind (servers.PER_KIND), so switching servers has a price too.
`baseline` on uvicorn's default runs twice: the ratio of its two copies (A/A) is the noise floor shown next to every
comparison. A slot is `variant@server-label`, `#2` marks the copy. Start order rotates each round.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
import time
from pathlib import Path

from apps.harness import registry
from scripts.common.environment import describe
from scripts.common.lock import exclusive_run
from scripts.common.results import LOAD_DIR, write_json
from scripts.load.bounded_run import Generator, RunSpec, merge, server_identity, window_of
from scripts.load.process import free_port, serve
from scripts.load.sampler import Sampler
from scripts.load.servers import DEFAULT, PER_KIND, ServerConfig, get
from scripts.load.settings import (
    GENERATOR_BOUND_SHARE,
    GENERATOR_CPUS,
    SERVER_CPUS,
    SIDE_DURATION_S,
    SIDE_ROUNDS,
    SIDE_SCENARIO,
    SIDE_USERS,
    SIDE_WARMUP_S,
)

KIND = "side-by-side"
REFERENCE = registry.reference()
VARIANTS_LAYOUT, SERVERS_LAYOUT = "variants", "servers"
SERVER_COST_VARIANTS = registry.tagged(registry.SERVER_COST)


def slot_name(variant: str, config: ServerConfig = DEFAULT, copy: int = 1) -> str:
    return f"{variant}@{config.label}" + (f"#{copy}" if copy > 1 else "")


AA_COPY = slot_name(REFERENCE, DEFAULT, 2)  # a second copy of the reference: the A/A pair


def slots(variants: tuple[str, ...], layout: str = VARIANTS_LAYOUT) -> list[str]:
    names = list(variants) if REFERENCE in variants else [REFERENCE, *variants]
    if layout == SERVERS_LAYOUT:
        return [*(slot_name(v, config) for config in PER_KIND for v in SERVER_COST_VARIANTS), AA_COPY]
    return [*(slot_name(v) for v in names), AA_COPY]


def variant_of(name: str) -> str:
    return name.split("@", 1)[0]


def config_of(name: str) -> ServerConfig:
    return get(name.split("@", 1)[1].split("#", 1)[0])


def reference_of(name: str) -> str:
    """The baseline on the same server: what this slot's cost is compared with."""
    return slot_name(REFERENCE, config_of(name))


def measure_round(order: list[str], index: int, layout: str = VARIANTS_LAYOUT) -> dict[str, object]:
    """One round: all servers up (in `order`), all generators started (same order), one window, all stopped."""
    with tempfile.TemporaryDirectory(prefix="ctxbench-side-") as tmp, contextlib.ExitStack() as stack:
        servers, generators = {}, {}
        for slot in order:
            port = free_port()
            config = config_of(slot)
            servers[slot] = stack.enter_context(serve(registry.get(variant_of(slot)), config, port, SERVER_CPUS))
            spec = RunSpec(
                variant_of(slot), SIDE_SCENARIO, SIDE_USERS, SIDE_DURATION_S, SIDE_WARMUP_S, config, tag=KIND
            )
            workdir = Path(tmp) / slot.replace("#", "_").replace("@", "_")
            workdir.mkdir()
            generators[slot] = Generator(spec, port, workdir)
        for slot in order:
            stack.callback(generators[slot].stop)  # runs before the servers' exits: generators stop first
            generators[slot].start()
        probes = {f"server:{slot}": servers[slot].cpu_seconds for slot in order}
        probes |= {f"generator:{slot}": generators[slot].process.cpu_seconds for slot in order}
        with Sampler(probes) as sampler:
            for slot in order:
                generators[slot].wait()
        per_slot = {}
        for slot in order:
            records = generators[slot].records()
            start, end = window_of(records)
            cpu = sampler.between(start, end)
            counts = merge(records, ("measured",))
            requests = counts["requests"]
            server_s = cpu[f"server:{slot}"]
            per_slot[slot] = {
                "variant": variant_of(slot),
                "server": server_identity(config_of(slot), servers[slot].command),
                "requests": requests,
                "window_s": end - start,
                "rps": requests / (end - start),
                "server_s": server_s,
                "server_us_per_request": server_s / requests * 1e6 if requests else None,
                "generator_s": cpu[f"generator:{slot}"],
                "failures_total": merge(records, ("warmup", "measured", "after")),
                "exit_code": generators[slot].returncode,
                "commands": {"server": servers[slot].command, "generator": generators[slot].command},
            }
        total_window = max(s["window_s"] for s in per_slot.values())
        machine = sampler.between(sampler.times[0], sampler.times[-1])
    default_reference = per_slot[slot_name(REFERENCE)]["server_us_per_request"]
    for name, entry in per_slot.items():
        cost, reference = entry["server_us_per_request"], per_slot[reference_of(name)]["server_us_per_request"]
        entry["ratio_vs_baseline"] = cost / reference if cost and reference else None  # on the same server
        entry["ratio_vs_default_baseline"] = cost / default_reference if cost and default_reference else None
    generator_share = sum(e["generator_s"] for e in per_slot.values()) / (total_window * len(GENERATOR_CPUS))
    return {
        "kind": KIND,
        "layout": layout,
        "round": index,
        "order": order,
        "scenario": SIDE_SCENARIO,
        "server": DEFAULT.as_dict(),  # the reference server; each slot records its own
        "users_per_variant": SIDE_USERS,
        "duration_s": SIDE_DURATION_S,
        "warmup_s": SIDE_WARMUP_S,
        "slots": per_slot,
        "aa_ratio": per_slot[AA_COPY]["ratio_vs_baseline"],
        "generator_share_of_its_cores": generator_share,
        "generator_bound": generator_share >= GENERATOR_BOUND_SHARE,
        "machine_busy_s": {name: value for name, value in machine.items() if name.startswith("core")},
        "environment": describe({"mode": KIND, "layout": layout, "round": index, "order": order}),
    }


def run_rounds(variants: tuple[str, ...], dry_run: bool, layout: str = VARIANTS_LAYOUT, out: Path = LOAD_DIR) -> int:
    names = slots(variants, layout)
    started = time.monotonic()
    for index in range(SIDE_ROUNDS):
        order = names[index % len(names) :] + names[: index % len(names)]
        if dry_run:
            print(f"round {index}: {' '.join(order)}")
            continue
        with exclusive_run():
            result = measure_round(order, index, layout)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        path = write_json(out / f"{stamp}-side-{layout}-round{index}.json", result)
        elapsed = (time.monotonic() - started) / 60
        print(f"[round {index + 1}/{SIDE_ROUNDS}] {elapsed:.1f} min, A/A {result['aa_ratio']:.3f} -> {path.name}")
        for slot in order:
            entry = result["slots"][slot]
            print(f"    {slot:<40} {entry['server_us_per_request']:7.0f} us/req  x{entry['ratio_vs_baseline']:.3f}")
    return 0
