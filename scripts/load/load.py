"""One orchestrated load run (`ctxbench load`): a pinned server of any kind + locust, bounded, JSON in results/load/."""

from __future__ import annotations

import argparse

from apps.harness import registry
from loadtests import scenarios
from scripts.common.arguments import (
    MAX_PROCESSES,
    MAX_RATE_PER_S,
    MAX_SECONDS,
    MAX_USERS,
    non_negative,
    one_of,
    output_dir,
    positive_int,
    seconds,
)
from scripts.common.lock import exclusive_run
from scripts.common.results import LOAD_DIR
from scripts.common.staged import MERGE, staged_run
from scripts.load import bounded_run, fronts
from scripts.load import servers as serverconfig
from scripts.load.settings import DURATION_S, USERS, WARMUP_S


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, choices=[variant.name for variant in registry.VARIANTS])
    parser.add_argument("--users", type=positive_int(MAX_USERS), default=USERS)
    parser.add_argument("--duration", type=seconds(), default=DURATION_S, help="measured seconds")
    parser.add_argument("--warmup", type=non_negative(MAX_SECONDS), default=WARMUP_S, help="seconds not measured")
    parser.add_argument(
        "--scenario",
        choices=(*scenarios.SCENARIOS, scenarios.EACH),
        default=scenarios.DEFAULT_SCENARIO,
        help=f"{scenarios.EACH}: every scenario at once, one result file per scenario",
    )
    parser.add_argument(
        "--server",
        default=serverconfig.DEFAULT.label,
        choices=list(serverconfig.BY_LABEL),
        metavar="LABEL",
        help="server configuration: " + ", ".join(serverconfig.BY_LABEL),
    )
    parser.add_argument(
        "--front",
        default=fronts.DIRECT_FRONT.label,
        type=one_of("front", fronts.BY_LABEL),
        metavar="FRONT",
        help="what the clients connect to: " + ", ".join(fronts.BY_LABEL) + " (a reverse proxy before the server)",
    )
    parser.add_argument(
        "--rate", type=non_negative(MAX_RATE_PER_S), default=0.0, help="total fixed rate (requests/s); 0 = closed loop"
    )
    parser.add_argument("--no-validation", action="store_true", help="do not judge responses (client cost baseline)")
    parser.add_argument("--processes", type=positive_int(MAX_PROCESSES), default=1, help="locust processes")
    parser.add_argument("--results-dir", type=output_dir, default=LOAD_DIR, help="where the JSON goes")


def check_arguments(args: argparse.Namespace) -> str | None:
    every = len(scenarios.SCENARIOS)
    if args.scenario == scenarios.EACH and args.users % every:
        return f"--scenario {scenarios.EACH} needs --users in multiples of {every} (as many in every scenario)"
    return None


def run(args: argparse.Namespace) -> int:
    front = fronts.get(args.front)
    if (missing := front.missing()) is not None:
        print(f"ctxbench load: skipped: {missing}")
        return 2
    spec = bounded_run.RunSpec(
        args.variant,
        args.scenario,
        args.users,
        args.duration,
        args.warmup,
        serverconfig.get(args.server),
        rate_per_s=args.rate,
        validate=not args.no_validation,
        processes=args.processes,
        tag="load",
        front=front,
    )
    # Staged, merge (scripts.common.staged): results/load/ is shared by this command, every sweep mode and the
    # side-by-side rounds, each adding files under new names; the report sums them all, so a run's files go in only
    # once it has finished and left nothing running, and a failed run adds nothing.
    written = []
    with staged_run(args.results_dir, mode=MERGE) as stage:
        with exclusive_run():
            result = bounded_run.execute(spec)
        for cell in bounded_run.cells_of(result):
            written.append(args.results_dir / bounded_run.save(cell, stage.dir).name)
            print(bounded_run.one_line(cell))
        if left := result["processes"]["left_behind"]:
            stage.fail(f"left processes running ({left}): its results are not added")
            return 1
    for path in written:
        print(f"written {path}")
    return 0
