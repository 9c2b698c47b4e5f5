"""Verify every registered variant in-process (the conformance gate) and keep the verdict counts as raw results."""

from __future__ import annotations

import argparse
from pathlib import Path

from apps.harness import conformance, registry
from scripts.common import environment
from scripts.common import results as resultfiles
from scripts.common.arguments import one_of, output_dir
from scripts.common.staged import staged_run

VERIFY_JSON = resultfiles.RESULTS / "verify" / "verdicts.json"
FRESH_SUFFIX = "_fresh_context"  # the same one-connection scenario with --reset-contextvars' fresh Context


def fresh(scenario: str) -> str:
    return f"{scenario}{FRESH_SUFFIX}"


MEASURED = (*registry.SCENARIOS, *(fresh(scenario) for scenario in registry.CHAINED))


def measure(variant: registry.Variant) -> dict[str, dict[str, int]]:
    counts = {scenario: dict(conformance.verdicts(variant, scenario)) for scenario in registry.SCENARIOS}
    for scenario in registry.CHAINED:
        counts[fresh(scenario)] = dict(conformance.verdicts(variant, scenario, fresh_context=True))
    return counts


def verify(variants: list[registry.Variant], results_root: Path, merge: bool = False) -> list[str]:
    """Measure, write results/verify/verdicts.json under `results_root`, and return `variant: problem` lines.

    `merge`: replace only these variants' entries in the existing file (one variant's row), keep the others'.
    Staged (scripts.common.staged, swap: results/verify/ is this command's alone): an exception or Ctrl-C keeps the
    previous verdicts. A gate that finds problems has still measured every variant: those verdicts are its result
    (they replace the previous ones; the problems are the exit code and the lines returned).
    """
    path = results_root / VERIFY_JSON.relative_to(resultfiles.RESULTS)
    previous = resultfiles.read_json(path).get("variants", {}) if merge and path.exists() else {}
    with staged_run(path.parent) as stage:
        results, problems = dict(previous), []
        for variant in variants:
            counts = measure(variant)
            found = conformance.scenario_problems(variant, counts)
            problems += [f"{variant.name}: {line}" for line in found]
            results[variant.name] = {"failures": counts, "conforms": not found, "problems": found}
            details = "".join(f"\n     {line}" for line in found)
            print(f"{'FAIL' if found else 'ok  '} {variant.name}{details}", flush=True)
        parameters = {"requests_per_scenario": conformance.REQUESTS_PER_SCENARIO, "scenarios": list(MEASURED)}
        data = {"environment": environment.describe(parameters), "variants": results}
        resultfiles.write_json(stage.dir / path.name, data)
    print(f"wrote {path}")
    return problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = [variant.name for variant in registry.VARIANTS]
    parser.add_argument("--variant", action="append", type=one_of("variant", names), help="only these (default: all)")
    parser.add_argument("--results-dir", type=output_dir, default=resultfiles.RESULTS, help="where results/ lives")


def run(args: argparse.Namespace) -> int:
    variants = [v for v in registry.VARIANTS if not args.variant or v.name in args.variant]
    return 1 if verify(variants, args.results_dir) else 0
