"""Sweeps of load runs (`make sweep [MODE=...]`): quick leak hunt, full grid, fixed-rate latency, side-by-side cost.

quick    every variant x every scenario x serverconfig.LEAK_HUNT directly, and the variants tagged behind_proxy x
         serverconfig.FRONTED behind every reverse proxy of fronts.PROXIES: one server (and front) and one locust per
         variant, server configuration and front drive every scenario at once, one result per scenario; each run
         stops when every cell's verdict is settled (scripts.load.hunt; --dry-run prints the plan and its estimated
         time; narrow it with --front/--server/--variant)
full     FULL_USERS x every scenario x serverconfig.ALL, directly or behind --front (hours: narrow it with --variant/
         --scenario/--server)
latency  fixed-rate runs well below capacity, interleaved variants, SIDE_ROUNDS rounds: latency figures
side     every variant's server at once on the server core, each with its own generator (scripts.load.side_by_side):
         cost
servers  baseline, contextvar_asgi and contextvar_isolated on every server kind at once, side by side: what a server
         and the isolation fix cost
client   the generator's CPU per request with and without judging responses, interleaved, CLIENT_CPU_ROUNDS rounds
h2       HTTP/2: every variant on scripts.load.h2.TARGETS (hypercorn and granian serving h2c and TLS themselves,
         nginx terminating HTTP/2 before a server), H2_ROUNDS rounds of H2_STREAMS streams multiplexed on one
         connection, each response judged; results/load/h2/ (narrow it with --server/--variant)
curves   baseline and the approaches, closed-loop GETs at CURVES_USERS, interleaved, CURVES_ROUNDS rounds:
         throughput and p50/p99 against concurrency (about 10 minutes)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from apps.harness import registry
from loadtests import scenarios
from scripts.common.arguments import one_of, output_dir
from scripts.common.lock import exclusive_run
from scripts.common.results import LOAD_DIR
from scripts.common.staged import MERGE, staged_run
from scripts.load import bounded_run, fronts, hunt, side_by_side
from scripts.load import servers as serverconfig
from scripts.load.settings import (
    CLIENT_CPU_ROUNDS,
    CURVES_DURATION_S,
    CURVES_ROUNDS,
    CURVES_USERS,
    CURVES_WARMUP_S,
    FIXED_RATE_PER_S,
    FIXED_RATE_USERS,
    FULL_DURATION_S,
    FULL_USERS,
    FULL_WARMUP_S,
    HUNT_STOP_AT,
    QUICK_DURATION_S,
    QUICK_USERS,
    QUICK_WARMUP_S,
    SIDE_ROUNDS,
    SIDE_WARMUP_S,
)

QUICK, FULL, LATENCY, SIDE, SERVERS, CLIENT = "quick", "full", "latency", "side", "servers", "client"
CURVES, H2 = "curves", "h2"
MODES = (QUICK, FULL, LATENCY, SIDE, SERVERS, CLIENT, CURVES, H2)
LATENCY_DURATION_S = 6.0
(CLIENT_VARIANT,) = registry.tagged(registry.CLIENT_LOAD)  # a full, all-ok response: the checker judges it all
CLIENT_DURATION_S = 6.0


def rotated(items: tuple[str, ...], shift: int) -> list[str]:
    """Start order moves by one each time, so no variant always runs first (or right after a given other)."""
    shift %= len(items)
    return list(items[shift:] + items[:shift])


def client_plan() -> Iterator[bounded_run.RunSpec]:
    for index in range(CLIENT_CPU_ROUNDS):
        for validate in (True, False) if index % 2 == 0 else (False, True):
            spec = (CLIENT_VARIANT, scenarios.GET, QUICK_USERS, CLIENT_DURATION_S, QUICK_WARMUP_S)
            yield bounded_run.RunSpec(*spec, validate=validate, tag=CLIENT)


def curves_variants(variants: tuple[str, ...]) -> tuple[str, ...]:
    """Baseline and the approaches (of those asked for): the curves a reader compares."""
    wanted = {variant.name for variant in registry.VARIANTS if variant.category == registry.APPROACH}
    return tuple(name for name in variants if name == registry.reference() or name in wanted)


def curves_plan(variants: tuple[str, ...]) -> Iterator[bounded_run.RunSpec]:
    """Every level in turn; within a level, rounds of every variant in an order rotated each round.

    Interleaved within a level rather than level after level per variant: the points compared on one chart were
    measured minutes apart at most, in every order. One locust process on one generator core: at 64 users it can be
    the bottleneck, and each run says so (cpu.generator_bound), which the chart marks instead of hiding it (more
    generator processes would only share the same core).
    """
    chosen = curves_variants(variants)
    for level_index, users in enumerate(CURVES_USERS):
        for round_index in range(CURVES_ROUNDS):
            for variant in rotated(chosen, level_index * CURVES_ROUNDS + round_index):
                spec = (variant, scenarios.GET, users, CURVES_DURATION_S, CURVES_WARMUP_S, serverconfig.DEFAULT)
                yield bounded_run.RunSpec(*spec, tag=CURVES)


BEHIND_PROXY = frozenset(registry.tagged(registry.BEHIND_PROXY))


def quick_cells(
    chosen_scenarios: tuple[str, ...], chosen_fronts: tuple[fronts.Front, ...] | None
) -> list[tuple[int, serverconfig.ServerConfig, str, fronts.Front]]:
    """The hunt's cells: every hunt configuration directly, the FRONTED ones behind each proxy (or the fronts asked)."""
    each = (scenarios.EACH,) if set(chosen_scenarios) == set(scenarios.SCENARIOS) else chosen_scenarios
    wanted = fronts.ALL if chosen_fronts is None else chosen_fronts
    cells = []
    for front in wanted:
        configs = serverconfig.LEAK_HUNT if front.is_direct else serverconfig.FRONTED
        cells += [(QUICK_USERS, config, s, front) for config in configs for s in each]
    return cells


def plan(
    mode: str,
    variants: tuple[str, ...],
    chosen_scenarios: tuple[str, ...],
    chosen_fronts: tuple[fronts.Front, ...] | None = None,
) -> Iterator[bounded_run.RunSpec]:
    """`chosen_fronts` None: the mode's default (quick: direct and every proxy; the others: direct only)."""
    if mode == CLIENT:
        yield from client_plan()
        return
    if mode == CURVES:
        yield from curves_plan(variants)
        return
    stop_at = 0  # only the hunt stops a run early, once its verdict is settled
    if mode == QUICK:
        # One server and one generator per variant and configuration, every scenario at once (scenarios.EACH):
        # starting them per cell cost more than the cells. The saved results are still one per scenario.
        # A front is one more process per run, not a new axis of its own: the same scenarios, and the variants
        # the registry tags for it (scripts.load.fronts: the approaches, a pitfall and the negative control).
        cells = quick_cells(chosen_scenarios, chosen_fronts)
        duration, warmup, stop_at = QUICK_DURATION_S, QUICK_WARMUP_S, HUNT_STOP_AT
    elif mode == FULL:
        wanted = chosen_fronts or (fronts.DIRECT_FRONT,)
        cells = [
            (u, config, s, front)
            for front in wanted
            for u in FULL_USERS
            for config in serverconfig.ALL
            for s in chosen_scenarios
        ]
        duration, warmup = FULL_DURATION_S, FULL_WARMUP_S
    else:  # LATENCY: fixed rate, default server, plain GETs, repeated rounds
        cells = [(FIXED_RATE_USERS, serverconfig.DEFAULT, scenarios.GET, fronts.DIRECT_FRONT)] * SIDE_ROUNDS
        duration, warmup = LATENCY_DURATION_S, SIDE_WARMUP_S
    rate = FIXED_RATE_PER_S if mode == LATENCY else 0.0
    for index, (users, config, scenario, front) in enumerate(cells):
        for variant in rotated(variants, index):
            if not front.is_direct and variant not in BEHIND_PROXY:
                continue
            spec = (variant, scenario, users, duration, warmup, config)
            yield bounded_run.RunSpec(*spec, rate_per_s=rate, tag=mode, front=front, stop_at=stop_at)


def hunt_plan(variants: tuple[str, ...]) -> list[bounded_run.RunSpec]:
    """The leak hunt of these variants: every scenario on every hunt configuration, and behind the proxies."""
    return hunt.with_pair_targets(list(plan(QUICK, variants, scenarios.SCENARIOS)))


def progress(done: int, total: int, started: float) -> str:
    elapsed = time.monotonic() - started
    eta = elapsed / done * (total - done) if done else 0.0
    return f"[{done:>3}/{total}] {elapsed / 60:5.1f} min elapsed, ~{eta / 60:4.1f} min left"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=MODES, default=QUICK)
    names = [variant.name for variant in registry.VARIANTS]
    parser.add_argument("--variant", action="append", type=one_of("variant", names), help="only these (default: all)")
    parser.add_argument("--scenario", action="append", choices=scenarios.SCENARIOS, help="only these scenarios")
    parser.add_argument(
        "--server",
        action="append",
        type=one_of("server label", serverconfig.BY_LABEL),
        metavar="LABEL",
        help="only these server configurations, e.g. asyncio-h11",
    )
    parser.add_argument(
        "--front",
        action="append",
        type=one_of("front", fronts.BY_LABEL),
        metavar="FRONT",
        help="only these fronts (quick default: all of them; full: direct): " + ", ".join(fronts.BY_LABEL),
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    parser.add_argument("--results-dir", type=output_dir, default=LOAD_DIR, help="where the JSON goes")


def run_all(specs: Iterable[bounded_run.RunSpec], dry_run: bool, out: Path = LOAD_DIR) -> int:
    specs = list(specs)
    started = time.monotonic()
    errors = 0
    for done, spec in enumerate(specs, 1):
        missing = spec.front.missing()
        if dry_run:
            label = f"{spec.variant} {spec.scenario} {spec.config.label} front={spec.front.label} u={spec.users}"
            skip = f" SKIPPED ({missing})" if missing else ""
            print(f"{label} {spec.duration_s}s rate={spec.rate_per_s} validate={spec.validate}{skip}")
            continue
        if missing:  # a proxy that is not installed: its cells are skipped, said once per cell, not an error
            print(f"{progress(done, len(specs), started)}  SKIPPED {spec.variant} {spec.config.label}: {missing}")
            continue
        try:
            with exclusive_run():  # per run: the other benchmarks on this machine can take turns between runs
                result = bounded_run.execute(spec)
            for cell in bounded_run.cells_of(result):
                path = bounded_run.save(cell, out)
                print(
                    f"{progress(done, len(specs), started)}  {bounded_run.one_line(cell)}  -> {path.name}", flush=True
                )
        except RuntimeError as error:  # one broken run must not lose the rest of the sweep
            errors += 1
            print(f"{progress(done, len(specs), started)}  ERROR {spec.variant} {spec.scenario}: {error}", flush=True)
    return 1 if errors else 0


def selected(args: argparse.Namespace) -> list[bounded_run.RunSpec]:
    """The runs of the mode, narrowed to the variants, scenarios, server labels and fronts asked for."""
    variants = tuple(args.variant or (variant.name for variant in registry.VARIANTS))
    chosen_fronts = tuple(map(fronts.get, args.front)) if getattr(args, "front", None) else None
    specs = plan(args.mode, variants, tuple(args.scenario or scenarios.SCENARIOS), chosen_fronts)
    chosen = [spec for spec in specs if not args.server or spec.config.label in args.server]
    return hunt.with_pair_targets(chosen) if args.mode == QUICK else chosen


def check_arguments(args: argparse.Namespace) -> str | None:
    """Every filter given must select something the mode runs: a sweep of nothing is a mistake, not a result."""
    if args.mode in (SIDE, SERVERS):  # fixed scenario and servers (and, for servers, fixed variants)
        fixed = {"--scenario": args.scenario, "--server": args.server}
        fixed |= {"--variant": args.variant} if args.mode == SERVERS else {}
        ignored = [option for option, given in fixed.items() if given]
        return f"--mode {args.mode} does not take {', '.join(ignored)}" if ignored else None
    every = list(plan(args.mode, tuple(variant.name for variant in registry.VARIANTS), scenarios.SCENARIOS))
    covered = {
        "--variant": {spec.variant for spec in every},
        "--scenario": {s for spec in every for s in (scenarios.SCENARIOS if spec.scenario == scenarios.EACH else [])}
        | {spec.scenario for spec in every} - {scenarios.EACH},
        "--server": {spec.config.label for spec in every},
    }
    for option, wanted in (("--variant", args.variant), ("--scenario", args.scenario), ("--server", args.server)):
        missing = [name for name in dict.fromkeys(wanted or ()) if name not in covered[option]]
        if missing:
            runs = ", ".join(sorted(covered[option]))
            return f"--mode {args.mode} runs no {option} {', '.join(missing)} (it runs: {runs})"
    return None if selected(args) else f"--mode {args.mode} plans no run with these filters"


def run(args: argparse.Namespace) -> int:
    variants = tuple(args.variant or (variant.name for variant in registry.VARIANTS))
    if args.dry_run:
        return sweep(args, variants, args.results_dir)
    if args.mode == QUICK:  # a hunt supersedes the previous hunt's files for what it ran (staged inside)
        filtered = any((args.variant, args.scenario, args.server, getattr(args, "front", None)))
        record = hunt.PARTIAL_RECORD if filtered else hunt.RECORD
        return hunt.replace_all(selected(args), False, args.results_dir, record)
    # Staged, merge (scripts.common.staged): results/load/ is shared (single runs, every mode) and the report sums
    # every file in it, so a sweep's files go in only once the whole sweep has run without an error; an interrupted
    # or partly failed sweep adds nothing, where its part would have been summed as if it were a whole sweep.
    with staged_run(args.results_dir, mode=MERGE) as stage:
        if status := sweep(args, variants, stage.dir):
            stage.fail(f"had errors (exit code {status}): none of its runs are added")
    return status


def sweep(args: argparse.Namespace, variants: tuple[str, ...], out: Path) -> int:
    if args.mode == SIDE:
        return side_by_side.run_rounds(variants, args.dry_run, out=out)
    if args.mode == SERVERS:
        return side_by_side.run_rounds(variants, args.dry_run, side_by_side.SERVERS_LAYOUT, out)
    if args.mode == H2:
        from scripts.load import h2  # httpx and the certificate code only when HTTP/2 runs

        return h2.run_all(variants, args.server, args.dry_run)
    if args.mode == QUICK:  # runs that stop when settled, timed as a whole (scripts.load.hunt)
        return hunt.execute_all(selected(args), args.dry_run, out, out / hunt.RECORD)
    return run_all(selected(args), args.dry_run, out)
