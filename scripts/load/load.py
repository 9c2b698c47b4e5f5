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
    positive_int,
    seconds,
)
from scripts.common.lock import exclusive_run
from scripts.load import bounded_run
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
        "--rate", type=non_negative(MAX_RATE_PER_S), default=0.0, help="total fixed rate (requests/s); 0 = closed loop"
    )
    parser.add_argument("--no-validation", action="store_true", help="do not judge responses (client cost baseline)")
    parser.add_argument("--processes", type=positive_int(MAX_PROCESSES), default=1, help="locust processes")


def check_arguments(args: argparse.Namespace) -> str | None:
    every = len(scenarios.SCENARIOS)
    if args.scenario == scenarios.EACH and args.users % every:
        return f"--scenario {scenarios.EACH} needs --users in multiples of {every} (as many in every scenario)"
    return None


def run(args: argparse.Namespace) -> int:
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
    )
    with exclusive_run():
        result = bounded_run.execute(spec)
    for cell in bounded_run.cells_of(result):
        path = bounded_run.save(cell)
        print(bounded_run.one_line(cell))
        print(f"written {path}")
    return 0 if not result["processes"]["left_behind"] else 1
