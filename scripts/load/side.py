"""Side-by-side cost: every variant's server at once on the server core, each with its own generator, one window.

Separate runs are not comparable on a shared machine (throughput moved 13-112% between repeats here), so the cost of
each variant is measured while all of them share the same core at the same time. `baseline` runs twice: the ratio of
its two copies (A/A) is the noise floor shown next to every comparison. Start order rotates each round.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
import time
from pathlib import Path

from apps import registry
from scripts.common.environment import describe
from scripts.common.lock import exclusive_run
from scripts.common.results import LOAD_DIR, write_json
from scripts.load.process import free_port, serve
from scripts.load.run import Generator, RunSpec, merge, window_of
from scripts.load.sampler import Sampler
from scripts.load.servers import DEFAULT
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
REFERENCE = "baseline"
AA_COPY = f"{REFERENCE}#2"  # a second copy of the reference: the A/A pair


def slots(variants: tuple[str, ...]) -> list[str]:
    names = list(variants) if REFERENCE in variants else [REFERENCE, *variants]
    return [*names, AA_COPY]


def variant_of(slot: str) -> str:
    return slot.split("#", 1)[0]


def measure_round(order: list[str], index: int) -> dict[str, object]:
    """One round: all servers up (in `order`), all generators started (same order), one window, all stopped."""
    with tempfile.TemporaryDirectory(prefix="ctxbench-side-") as tmp, contextlib.ExitStack() as stack:
        servers, generators = {}, {}
        for slot in order:
            port = free_port()
            servers[slot] = stack.enter_context(serve(registry.get(variant_of(slot)), DEFAULT, port, SERVER_CPUS))
            spec = RunSpec(variant_of(slot), SIDE_SCENARIO, SIDE_USERS, SIDE_DURATION_S, SIDE_WARMUP_S, tag=KIND)
            workdir = Path(tmp) / slot.replace("#", "_")
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
    reference = per_slot[REFERENCE]["server_us_per_request"]
    for entry in per_slot.values():
        cost = entry["server_us_per_request"]
        entry["ratio_vs_baseline"] = cost / reference if cost and reference else None
    generator_share = sum(e["generator_s"] for e in per_slot.values()) / (total_window * len(GENERATOR_CPUS))
    return {
        "kind": KIND,
        "round": index,
        "order": order,
        "scenario": SIDE_SCENARIO,
        "server": DEFAULT.as_dict(),
        "users_per_variant": SIDE_USERS,
        "duration_s": SIDE_DURATION_S,
        "warmup_s": SIDE_WARMUP_S,
        "slots": per_slot,
        "aa_ratio": per_slot[AA_COPY]["ratio_vs_baseline"],
        "generator_share_of_its_cores": generator_share,
        "generator_bound": generator_share >= GENERATOR_BOUND_SHARE,
        "machine_busy_s": {name: value for name, value in machine.items() if name.startswith("core")},
        "environment": describe({"mode": KIND, "round": index, "order": order}),
    }


def run_rounds(variants: tuple[str, ...], dry_run: bool) -> int:
    names = slots(variants)
    started = time.monotonic()
    for index in range(SIDE_ROUNDS):
        order = names[index % len(names) :] + names[: index % len(names)]
        if dry_run:
            print(f"round {index}: {' '.join(order)}")
            continue
        with exclusive_run():
            result = measure_round(order, index)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        path = write_json(LOAD_DIR / f"{stamp}-side-round{index}.json", result)
        elapsed = (time.monotonic() - started) / 60
        print(f"[round {index + 1}/{SIDE_ROUNDS}] {elapsed:.1f} min, A/A {result['aa_ratio']:.3f} -> {path.name}")
        for slot in order:
            entry = result["slots"][slot]
            print(f"    {slot:<24} {entry['server_us_per_request']:7.0f} us/req  x{entry['ratio_vs_baseline']:.3f}")
    return 0
