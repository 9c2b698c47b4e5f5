"""The environment every result file carries: versions, Python, CPU, load, git commit, the command and parameters."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"


def _requirement_name(requirement: str) -> str:
    """`uvicorn[standard]>=0.30` -> `uvicorn`."""
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0]


def recorded_packages() -> tuple[str, ...]:
    """The packages every result names the version of: the project's dependencies (pyproject.toml) and the libraries
    under them that change what is measured (`[tool.ctxbench] also-recorded`): the loops, parsers, anyio, pydantic."""
    project = tomllib.loads(PYPROJECT.read_text())
    direct = [_requirement_name(requirement) for requirement in project["project"]["dependencies"]]
    return tuple(dict.fromkeys([*direct, *project["tool"]["ctxbench"]["also-recorded"]]))


PACKAGES = recorded_packages()


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
