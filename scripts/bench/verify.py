"""Verify every registered variant in-process (the conformance gate) and keep the verdict counts as raw results."""

from __future__ import annotations

import argparse
from pathlib import Path

from apps.harness import conformance, registry
from scripts.common import environment
from scripts.common import results as resultfiles

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
    """
    path = results_root / VERIFY_JSON.relative_to(resultfiles.RESULTS)
    previous = resultfiles.read_json(path).get("variants", {}) if merge and path.exists() else {}
    results, problems = dict(previous), []
    for variant in variants:
        counts = measure(variant)
        found = conformance.scenario_problems(variant, counts)
        problems += [f"{variant.name}: {line}" for line in found]
        results[variant.name] = {"failures": counts, "conforms": not found, "problems": found}
        print(f"{'FAIL' if found else 'ok  '} {variant.name}" + "".join(f"\n     {line}" for line in found), flush=True)
    parameters = {"requests_per_scenario": conformance.REQUESTS_PER_SCENARIO, "scenarios": list(MEASURED)}
    resultfiles.write_json(path, {"environment": environment.describe(parameters), "variants": results})
    print(f"wrote {path}")
    return problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", action="append", help="only these variants (default: all)")
    parser.add_argument("--results-dir", type=Path, default=resultfiles.RESULTS, help="where results/ lives")


def run(args: argparse.Namespace) -> int:
    variants = [v for v in registry.VARIANTS if not args.variant or v.name in args.variant]
    return 1 if verify(variants, args.results_dir) else 0
