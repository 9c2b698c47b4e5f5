"""Argument types every command shares: names checked against what exists, numbers range-checked, paths checked.

Each type is a callable for argparse's `type=`: it returns the parsed value or raises ArgumentTypeError, which the
CLI's parser turns into exit 2 and one line. Each carries `kind` (and bounds or names), so tests can tell that every
option taking a value is checked, and generate the values it must refuse.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

MAX_SECONDS = 7 * 24 * 3600.0  # a week: any longer duration is a typo, not a run
MAX_COUNT = 1_000_000_000  # requests, users, processes: beyond this a count is a typo
MAX_USERS = 10_000  # locust users on one generator core
MAX_PROCESSES = 64
MAX_RATE_PER_S = 1_000_000.0  # requests/s over all users
MAX_SEED = 2**32 - 1


def typed(function: Callable[[str], Any], kind: str, **attributes: Any) -> Callable[[str], Any]:
    """Mark a parse function with its kind (and bounds or names): how tests know what it must refuse."""
    function.kind = kind  # type: ignore[attr-defined]
    for name, value in attributes.items():
        setattr(function, name, value)
    return function


def _number(text: str, convert: Callable[[str], Any]) -> Any:
    try:
        return convert(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An integer in [low, high]."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer from {low:,} to {high:,}, got {text!r}")
        return value

    return typed(parse, "int", low=low, high=high)


def float_range(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """A finite number in [low, high] (or (low, high] with `low_open`)."""

    def parse(text: str) -> float:
        value = _number(text, float)
        above = value > low if low_open else value >= low
        if not (math.isfinite(value) and above and value <= high):
            bound = f"above {low:g}" if low_open else f"from {low:g}"
            raise argparse.ArgumentTypeError(f"must be a number {bound} to {high:g}, got {text!r}")
        return value

    return typed(parse, "float", low=low, high=high, low_open=low_open)


def positive_int(high: int = MAX_COUNT) -> Callable[[str], int]:
    return int_range(1, high)


def seconds(minimum: float = 1.0, high: float = MAX_SECONDS) -> Callable[[str], float]:
    """A duration: at least `minimum` seconds (a shorter run measures nothing), at most a week."""
    return float_range(minimum, high)


def non_negative(high: float) -> Callable[[str], float]:
    """A number where 0 means none (no warm-up, no fixed rate: closed loop)."""
    return float_range(0.0, high)


def one_of(what: str, names: Iterable[str]) -> Callable[[str], str]:
    """One of the known names of `what` (a variant, a server label, ...): anything else is refused with the list."""
    known = tuple(names)

    def parse(text: str) -> str:
        if text not in known:
            raise argparse.ArgumentTypeError(f"unknown {what} {text!r}; known: {', '.join(known)}")
        return text

    return typed(parse, "name", names=known)


def _path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    if any(not character.isprintable() for character in text):  # a newline or a tab in a path is a paste gone wrong
        raise argparse.ArgumentTypeError(f"a path with control characters: {text!r}")
    return Path(text)


def existing_dir(text: str) -> Path:
    """A directory that must exist (results to read, an app to import): never created by looking."""
    path = _path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {text!r}")
    return path


def output_dir(text: str) -> Path:
    """A directory to write into: created on the first write, but not a path through or onto a regular file."""
    path = _path(text)
    for step in (path, *path.parents):
        if step.exists():
            if not step.is_dir():
                raise argparse.ArgumentTypeError(f"not a directory: {str(step)!r}")
            break
    return path


def output_file(text: str) -> Path:
    """A file to write: not a directory, in a directory that exists."""
    path = _path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"a directory, not a file: {text!r}")
    if not path.absolute().parent.is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {str(path.parent)!r}")
    return path


def executable(text: str) -> str:
    """A program on PATH or at a path; returned as a path (abspath: a virtualenv's python is a symlink to keep)."""
    found = shutil.which(text) if text.strip() and os.sep not in text else None
    if os.sep in text and os.path.isfile(text) and os.access(text, os.X_OK):
        found = os.path.abspath(text)
    if found is None:
        raise argparse.ArgumentTypeError(f"no Python interpreter at {text!r} (neither a path nor on PATH)")
    return found


def url_path(text: str) -> str:
    if not text.startswith("/") or any(character.isspace() for character in text):
        raise argparse.ArgumentTypeError(f"a path must start with / and hold no spaces, got {text!r}")
    return text


def header_name(text: str) -> str:
    if not text or not all(character.isalnum() or character in "-_" for character in text):
        raise argparse.ArgumentTypeError(f"not a header name: {text!r}")
    return text


def cpu_list(text: str) -> str:
    """CPUs this process may run on, as `0,2-3`; '' for none (no pinning)."""
    if not text:
        return text
    allowed = os.sched_getaffinity(0)
    try:
        chosen = set()
        for part in text.split(","):
            first, _, last = part.partition("-")
            start, end = int(first), int(last or first)
            if start > end:
                raise ValueError
            chosen.update(range(start, end + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a CPU list like 0,2-3: {text!r}") from None
    if not chosen <= allowed:
        raise argparse.ArgumentTypeError(f"CPUs {sorted(chosen - allowed)} not available; available: {sorted(allowed)}")
    return text


for _function, _kind in (
    (existing_dir, "existing_dir"),
    (output_dir, "output_dir"),
    (output_file, "output_file"),
    (executable, "executable"),
    (url_path, "url_path"),
    (header_name, "header_name"),
    (cpu_list, "cpu_list"),
):
    typed(_function, _kind)
