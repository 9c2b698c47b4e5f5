"""Verify every registered variant in-process (the conformance gate every benchmark runs first)."""

from __future__ import annotations

import argparse

from apps import conformance, registry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", action="append", help="only these variants (default: all)")


def run(args: argparse.Namespace) -> int:
    failed = 0
    for variant in registry.VARIANTS:
        if args.variant and variant.name not in args.variant:
            continue
        found = conformance.check(variant)
        failed += bool(found)
        print(f"{'FAIL' if found else 'ok  '} {variant.name}" + "".join(f"\n     {line}" for line in found))
    return 1 if failed else 0
