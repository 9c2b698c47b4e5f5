"""The stacks of the version matrix as data: a name, a Python minor version, pinned packages, a committed lock."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from scripts.common.environment import ROOT

STACKS_DIR = ROOT / "stacks"
PYENV_VERSIONS = Path.home() / ".pyenv" / "versions"

# The current releases (what requirements.lock resolves to); every "current" stack pins these.
FASTAPI, STARLETTE, UVICORN = "0.165.0", "1.10.0", "0.54.0"


@dataclass(frozen=True)
class Stack:
    name: str
    python: str  # minor version, e.g. "3.11"
    pins: MappingProxyType[str, str]  # distribution -> exact version
    # what this stack is, in one sentence: versions and dates only. What a release *does* is computed from the
    # stack's runs (scripts.versions.report.server_behaviour), never written here (tests/test_report_advice.py).
    why: str
    extras: MappingProxyType[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )  # distribution -> extras, e.g. uvicorn -> standard

    @property
    def requirements_in(self) -> Path:
        return STACKS_DIR / f"{self.name}.in"

    @property
    def lock(self) -> Path:
        return STACKS_DIR / f"{self.name}.lock"

    def render_in(self) -> str:
        """The .in file the lock is compiled from: exactly the declared pins (a test keeps the two in step)."""
        lines = [f"# stack {self.name} (Python {self.python}); generated from scripts/versions/stacks.py"]
        for name, version in self.pins.items():
            extra = f"[{self.extras[name]}]" if name in self.extras else ""
            lines.append(f"{name}{extra}=={version}")
        return "\n".join(lines) + "\n"


def stack(name: str, python: str, why: str, **pins: str) -> Stack:
    # uvicorn[standard]: uvloop + httptools, the configuration `uvicorn app` picks by default (and h11 for the twin)
    normalized = {key.replace("_", "-"): value for key, value in pins.items()}
    return Stack(name, python, MappingProxyType(normalized), why, MappingProxyType({"uvicorn": "standard"}))


def current(python: str) -> Stack:
    why = f"Today's releases on CPython {python}."
    return stack(f"current-py{python}", python, why, fastapi=FASTAPI, starlette=STARLETTE, uvicorn=UVICORN)


STACKS: tuple[Stack, ...] = (
    # uvicorn's history of how a request task starts, each with today's FastAPI and Starlette
    stack(
        "uvicorn-0.38",
        "3.11",
        "uvicorn 0.38.0 with today's FastAPI and Starlette.",
        fastapi=FASTAPI,
        starlette=STARLETTE,
        uvicorn="0.38.0",
    ),
    stack(
        "uvicorn-0.39",
        "3.11",
        "uvicorn 0.39.0 with today's FastAPI and Starlette.",
        fastapi=FASTAPI,
        starlette=STARLETTE,
        uvicorn="0.39.0",
    ),
    stack(
        "uvicorn-0.44",
        "3.11",
        "uvicorn 0.44.0 with today's FastAPI and Starlette.",
        fastapi=FASTAPI,
        starlette=STARLETTE,
        uvicorn="0.44.0",
    ),
    current("3.11"),
    current("3.12"),
    current("3.13"),
    # Older FastAPI lines with the Starlette they pin and the uvicorn, anyio and pydantic released alongside them.
    stack(
        "fastapi-0.95",
        "3.11",
        "FastAPI 0.95.2 (May 2023): Starlette 0.27, pydantic 1, anyio 3, uvicorn 0.22.",
        fastapi="0.95.2",
        starlette="0.27.0",
        uvicorn="0.22.0",
        anyio="3.6.2",
        pydantic="1.10.7",
    ),
    stack(
        "fastapi-0.110",
        "3.11",
        "FastAPI 0.110.0 (Feb 2024): Starlette 0.36, pydantic 2.6, anyio 4.3, uvicorn 0.27.",
        fastapi="0.110.0",
        starlette="0.36.3",
        uvicorn="0.27.1",
        anyio="4.3.0",
        pydantic="2.6.2",
    ),
)
BY_NAME = MappingProxyType({s.name: s for s in STACKS})

LOCK_LINE = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock_text: str) -> dict[str, str]:
    """`name==version` lines of a compiled lock (comments and hashes ignored), names normalized."""
    found = {}
    for line in lock_text.splitlines():
        match = LOCK_LINE.match(line.strip())
        if match:
            found[normalize(match.group(1))] = match.group(2)
    return found


def lock_problems(item: Stack) -> list[str]:
    """Why a stack's committed .in/.lock disagree with its declaration (empty when they agree)."""
    if not item.requirements_in.exists() or not item.lock.exists():
        return [
            f"{item.name}: missing {item.requirements_in.name} or {item.lock.name} (run `ctxbench versions --lock`)"
        ]
    problems = []
    if item.requirements_in.read_text() != item.render_in():
        problems.append(f"{item.name}: {item.requirements_in.name} differs from the declaration")
    locked = locked_versions(item.lock.read_text())
    for name, version in item.pins.items():
        if locked.get(normalize(name)) != version:
            problems.append(f"{item.name}: declares {name}=={version}, lock has {locked.get(normalize(name))}")
    header = f"--python-version {item.python}"
    if header not in item.lock.read_text():
        problems.append(f"{item.name}: lock not compiled for Python {item.python}")
    return problems


def find_python(version: str, search: tuple[Path, ...] | None = None) -> Path | None:
    """An interpreter of this minor version: pyenv's versions folder first, then PATH's pythonX.Y; None if absent."""
    import shutil

    roots = (PYENV_VERSIONS,) if search is None else search
    for root in roots:
        candidates = sorted(root.glob(f"{version}.*/bin/python{version}"), reverse=True) if root.is_dir() else []
        if candidates:
            return candidates[0]
    if search is None and (found := shutil.which(f"python{version}")):
        return Path(found)
    return None
