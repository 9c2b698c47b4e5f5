"""Side-by-side cost comparison: placeholder."""

from __future__ import annotations


def run_rounds(variants: tuple[str, ...], dry_run: bool) -> int:
    raise NotImplementedError
