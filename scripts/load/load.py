"""One orchestrated load run (`ctxbench load`): a pinned server of any kind + locust, bounded, JSON in results/load/."""

from __future__ import annotations

import argparse

from apps.harness import registry
from loadtests import scenarios
from scripts.common.lock import exclusive_run
from scripts.load import bounded_run, fronts
from scripts.load import servers as serverconfig
from scripts.load.settings import DURATION_S, USERS, WARMUP_S


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, choices=[variant.name for variant in registry.VARIANTS])
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--duration", type=float, default=DURATION_S, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=WARMUP_S, help="seconds sent but not measured")
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
        choices=list(fronts.BY_LABEL),
        metavar="FRONT",
        help="what the clients connect to: " + ", ".join(fronts.BY_LABEL) + " (a reverse proxy before the server)",
    )
    parser.add_argument("--rate", type=float, default=0.0, help="total fixed rate (requests/s); 0 = closed loop")
    parser.add_argument("--no-validation", action="store_true", help="do not judge responses (client cost baseline)")
    parser.add_argument("--processes", type=int, default=1, help="locust processes")


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
    with exclusive_run():
        result = bounded_run.execute(spec)
    for cell in bounded_run.cells_of(result):
        path = bounded_run.save(cell)
        print(bounded_run.one_line(cell))
        print(f"written {path}")
    return 0 if not result["processes"]["left_behind"] else 1
