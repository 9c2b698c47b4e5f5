"""Regenerate the README's variant table from the registry."""

from __future__ import annotations

import argparse

from scripts import readme


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    readme.write()
    print("README.md variant table regenerated from apps/registry.py")
    return 0
