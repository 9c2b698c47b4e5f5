"""The environment every result file carries: versions, Python, CPU, load, git commit, the command and parameters.

The suite's recorder: ctxbench.environment (what the installed probe records) plus the packages this clone's
pyproject.toml names and its git commit.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from ctxbench import environment as recorder
from ctxbench.environment import cpu_model  # noqa: F401 - the suite imports it from here

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"


def _requirement_name(requirement: str) -> str:
    """`uvicorn[standard]>=0.30` -> `uvicorn`."""
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0]


def recorded_packages() -> tuple[str, ...]:
    """The packages every result names the version of: the project's dependencies (pyproject.toml) and the libraries
    under them that change what is measured (`[tool.ctxbench] also-recorded`): the loops, parsers, anyio, pydantic."""
    project = tomllib.loads(PYPROJECT.read_text())
    # the probe's few dependencies and the suite's extra: every package the suite runs on
    requirements = [*project["project"]["dependencies"], *project["project"]["optional-dependencies"]["suite"]]
    direct = [_requirement_name(requirement) for requirement in requirements]
    return tuple(dict.fromkeys([*direct, *project["tool"]["ctxbench"]["also-recorded"]]))


PACKAGES = recorded_packages()


def package_versions() -> dict[str, str | None]:
    """Installed version of every package in PACKAGES, None where it is not installed (stdlib only: the version
    matrix calls this inside old stacks' interpreters too)."""
    return recorder.package_versions(PACKAGES)


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
    described = recorder.describe(parameters)
    described.pop("ctxbench")  # the clone is named by its commit
    return {**described, "packages": package_versions(), "git": git_commit()}
