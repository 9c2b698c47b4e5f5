"""docs/extending.md's "Add a variant" and "Add a server" steps, followed literally in a copy of the repo, suffice.

A throw-away variant and a throw-away server configuration are added the way the steps say (one new module plus one
registry entry; one `ServerConfig` entry), and both reach the conformance gate and the leak-hunt plan, no other edit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ctxbench", "apps", "loadtests", "microbench", "scripts")
NEW_VARIANT, NEW_SERVER = "throwaway_variant", "throwaway-uvicorn"


def _copy_repository(target: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def _insert_before(path: Path, anchor: str, text: str) -> None:
    source = path.read_text()
    assert anchor in source, f"{anchor!r} is not in {path}: the steps of docs/extending.md name a place that moved"
    path.write_text(source.replace(anchor, text + anchor, 1))


def _ctxbench(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy), "CTXBENCH_LOCK": str(copy / "run.lock")}
    command = [sys.executable, "-m", "scripts.cli", *args]
    return subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=240, check=False)


def test_a_new_variant_and_a_new_server_reach_the_gate_and_the_hunt_plan(tmp_path: Path) -> None:
    copy = _copy_repository(tmp_path)
    # Add a variant, step 1: copy the closest module and rename its variant.
    source = (copy / "apps" / "contextvar_asgi.py").read_text()
    (copy / "apps" / f"{NEW_VARIANT}.py").write_text(source.replace('"contextvar_asgi"', f'"{NEW_VARIANT}"'))
    # step 2: one registry entry, with the verdicts expected (those of the module it was copied from).
    entry = f'    Variant("{NEW_VARIANT}", APPROACH, "A throw-away copy.", expected=expect(NONE, ENTRY_LEAK)),\n'
    _insert_before(copy / "apps" / "harness" / "registry.py", ")\n\nBY_NAME = ", entry)
    # Add a server: one ServerConfig entry in the leak hunt.
    server = f'    ServerConfig("{NEW_SERVER}", "uvicorn", ("--loop", "asyncio", "--http", "h11")),\n'
    _insert_before(copy / "ctxbench" / "serving" / "servers.py", ")\n# uvicorn's other parser/loop pairs", server)

    gate = _ctxbench(copy, "verify", "--variant", NEW_VARIANT, "--results-dir", str(copy / "results"))
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert NEW_VARIANT in gate.stdout

    plan = _ctxbench(copy, "sweep", "--dry-run", "--variant", NEW_VARIANT)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    planned = [line.split() for line in plan.stdout.splitlines() if line.startswith(NEW_VARIANT)]
    assert [NEW_VARIANT, "each", NEW_SERVER] in [words[:3] for words in planned]


def test_without_its_registry_entry_a_new_variant_fails_the_suite(tmp_path: Path) -> None:
    """The negative case: step 1 alone is caught (the registry test sees an unregistered module)."""
    copy = _copy_repository(tmp_path)
    shutil.copy(copy / "apps" / "contextvar_asgi.py", copy / "apps" / f"{NEW_VARIANT}.py")
    shutil.copytree(ROOT / "tests", copy / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "README.md", copy / "README.md")
    shutil.copytree(ROOT / "docs", copy / "docs")  # the variant table the registry test checks is in docs/
    env = {**os.environ, "PYTHONPATH": str(copy)}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_registry.py",
        "-k",
        "registered",
    ]
    result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1 and NEW_VARIANT in result.stdout, result.stdout
