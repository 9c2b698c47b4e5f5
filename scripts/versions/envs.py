"""One virtualenv per stack, built from its committed lock and cached by the lock's hash; locks compiled with uv."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from scripts.common.environment import ROOT
from scripts.common.results import write_text
from scripts.versions.stacks import Stack, find_python

CACHE_DIR = ROOT / ".venv-stacks"
READY = ".ready"  # written last: a venv without it was interrupted mid-build and is rebuilt
PIP_TIMEOUT_S = 900


@dataclass(frozen=True)
class Env:
    stack: Stack
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"


class Unavailable(RuntimeError):
    """The stack cannot run on this machine (its Python is missing): skipped with a note, not an error."""


def lock_hash(stack: Stack) -> str:
    return hashlib.sha256(stack.lock.read_bytes()).hexdigest()[:12]


def env_dir(stack: Stack, cache: Path = CACHE_DIR) -> Path:
    return cache / f"{stack.name}-{lock_hash(stack)}"


def ensure(stack: Stack, cache: Path = CACHE_DIR, log=print) -> Env:
    """The stack's virtualenv, built from its lock if this lock's hash has none yet; stale ones are removed."""
    python = find_python(stack.python)
    if python is None:
        raise Unavailable(f"no Python {stack.python} on this machine (looked in ~/.pyenv/versions and PATH)")
    target = env_dir(stack, cache)
    if (target / READY).exists():
        return Env(stack, target)
    for stale in cache.glob(f"{stack.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)  # an older lock's env, or a half-built one
    log(f"  building {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target} from {stack.lock.name}")
    subprocess.run([str(python), "-m", "venv", str(target)], check=True)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # --no-deps: the lock already lists every package; pip must not resolve anything the lock did not
    subprocess.run([*pip, "--no-deps", "-r", str(stack.lock)], check=True, timeout=PIP_TIMEOUT_S)
    write_text(target / READY, lock_hash(stack) + "\n")
    return Env(stack, target)


def freeze(env: Env) -> dict[str, str]:
    """The env's installed packages (`pip freeze`), normalized names: the stack's half of a result's environment."""
    out = subprocess.run(
        [str(env.python), "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pairs = (line.split("==", 1) for line in out.splitlines() if "==" in line)
    return {name.lower().replace("_", "-"): version for name, version in pairs}


def uv_binary() -> str | None:
    return (
        os.environ.get("UV")
        or shutil.which("uv")
        or next((str(p) for p in (Path("/tmp/uvenv/bin/uv"),) if p.exists()), None)
    )


def compile_lock(stack: Stack) -> Path:
    """Write the stack's .in from its declaration and compile the .lock with uv (a maintainer step; CI only reads)."""
    uv = uv_binary()
    if uv is None:
        raise RuntimeError("compiling a lock needs uv (set UV=/path/to/uv)")
    write_text(stack.requirements_in, stack.render_in())
    relative_in, relative_lock = (p.relative_to(ROOT) for p in (stack.requirements_in, stack.lock))
    command = [uv, "pip", "compile", str(relative_in), "--python-version", stack.python, "-o", str(relative_lock)]
    command += ["--python-platform", "x86_64-unknown-linux-gnu", "--quiet"]
    subprocess.run(command, cwd=ROOT, check=True)
    return stack.lock
