"""The environment a result carries, from installed metadata only: ctxbench's version, Python, CPU, load, the command.

Stdlib only and no file of the clone read (the installed probe has no pyproject.toml beside it): the suite's recorder
(scripts/common/environment.py) adds its pyproject's package list and the git commit on top of `describe`. The
version matrix calls `package_versions` inside old stacks' interpreters too.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path

DISTRIBUTION = "ctxbench"
# What the user's interpreter runs the app on, recorded by the probe (asked there, not here): the servers, the
# loops and parsers under them, and what FastAPI is built on.
APP_PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "gunicorn",
    "uvicorn-worker",
    "hypercorn",
    "granian",
    "daphne",
    "uvloop",
    "httptools",
    "h11",
    "anyio",
    "pydantic",
)


def version() -> str | None:
    """ctxbench's own release, as installed (a wheel, or the clone's editable install), or None when not installed."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed version of every named distribution in this interpreter, None where it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe(parameters: dict[str, object] | None = None) -> dict[str, object]:
    """Where a figure came from: when, ctxbench's release, this interpreter and machine, the command line."""
    return {
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "ctxbench": version(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
        "argv": sys.argv,
        "parameters": parameters or {},
    }
