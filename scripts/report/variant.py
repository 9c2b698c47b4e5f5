"""One variant's whole row: its gate, leak hunt, paired CPU bench and instruction count, merged, then the report.

    ctxbench variant NAME [--dry-run] [--no-instructions]

Each step replaces that variant's previous results only (results/verify/verdicts.json entry, its leak-hunt files
under results/load/, app_NAME.json, paired-NAME.json and instructions_NAME.json under results/bench/) and keeps
everyone else's; the report is then rebuilt from the raw files. Each comparison stays inside one run: the paired
bench pairs the variant with baseline in its own blocks, and its instruction file holds the baseline and A/A counted
in the same run (counts move a little between runs, more than the A/A band within one). The step durations go to
results/variants/NAME.json. It lives in the report stage because it drives the bench and load stages and the report.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from apps.harness import registry
from scripts.bench import bench
from scripts.common import results as resultfiles
from scripts.common.arguments import one_of
from scripts.common.environment import describe
from scripts.load import hunt, sweep
from scripts.report import report

VARIANTS_DIR = resultfiles.RESULTS / "variants"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = [variant.name for variant in registry.VARIANTS]
    parser.add_argument("name", type=one_of("variant", names), help="a registered variant")
    parser.add_argument("--dry-run", action="store_true", help="print the steps and the hunt plan, run nothing")
    parser.add_argument("--no-instructions", action="store_true", help="skip the callgrind count (the slowest step)")


def bench_args(name: str, mode: str) -> argparse.Namespace:
    return argparse.Namespace(
        mode=mode,
        variant=[name],
        results_dir=resultfiles.BENCH_DIR,
        charts_dir=None,
        affinity=bench.default_affinity(),
        seed=0,
        from_results=False,
    )


def steps(args: argparse.Namespace) -> list[tuple[str, Callable[[], int]]]:
    name = args.name
    specs = sweep.hunt_plan((name,))
    found: list[tuple[str, Callable[[], int]]] = [
        ("gate and paired CPU bench", lambda: bench.run(bench_args(name, "default"))),
        ("leak hunt", lambda: hunt.replace_all(specs, args.dry_run, record=hunt.PARTIAL_RECORD)),
    ]
    if not args.no_instructions:
        found.append(("instruction count", lambda: bench.run(bench_args(name, "instructions"))))
    found.append(("report", lambda: report.run(argparse.Namespace(results_dir=resultfiles.RESULTS, no_rebuild=False))))
    return found


def run(args: argparse.Namespace) -> int:
    plan = steps(args)
    if args.dry_run:
        for label, _ in plan:
            print(f"step: {label}")
        return dict(plan)["leak hunt"]()
    started = time.monotonic()
    timings: dict[str, float] = {}
    for label, step in plan:
        begun = time.monotonic()
        status = step()
        timings[label] = round(time.monotonic() - begun, 1)
        print(f"== {label}: {timings[label]}s (exit {status})", flush=True)
        if status:
            print(f"ctxbench variant {args.name}: {label} failed; the later steps did not run")
            return status
    seconds = round(time.monotonic() - started, 1)
    record = {"variant": args.name, "seconds": seconds, "steps_s": timings}
    path = resultfiles.write_json(VARIANTS_DIR / f"{args.name}.json", {**record, "environment": describe(record)})
    print(f"ctxbench variant {args.name}: {seconds}s ({seconds / 60:.1f} min) -> {path}")
    return 0
