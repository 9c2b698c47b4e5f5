"""The environment every result file carries: versions, Python, CPU, load, git commit, the command and parameters."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "h11",
    "anyio",
    "pydantic",
    "locust",
    "pyperf",
    "starlette-context",
    "asgi-correlation-id",
    "structlog",
    "gunicorn",
    "uvicorn-worker",
    "hypercorn",
    "granian",
    "daphne",
    "sentry-sdk",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation-fastapi",
    "loguru",
)


def package_versions() -> dict[str, str | None]:
    """Installed version of every package in PACKAGES, None where it is not installed (stdlib only: the version
    matrix calls this inside old stacks' interpreters too)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
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


def git_commit() -> dict[str, object]:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return result.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def describe(parameters: dict[str, object] | None = None) -> dict[str, object]:
    """Everything a reader needs to know where a figure came from."""
    return {
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
        "packages": package_versions(),
        "git": git_commit(),
        "argv": sys.argv,
        "parameters": parameters or {},
    }
