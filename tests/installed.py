"""Offline wheels for the installed-tool tests: ctxbench's wheel built from the clone, its dependencies repacked.

No index is asked, whatever pip's configuration says: ctxbench's wheel is built with the lock's setuptools
(--no-build-isolation), and each dependency (psutil) is repacked into a wheel from its files installed in this
virtualenv (the files and tags its RECORD and WHEEL list), so `pip install --no-index --find-links WHEELHOUSE ctxbench`
works on a machine with no network beyond what `make setup` installed.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a build of the wheel reads from the clone: the package, the metadata, the readme it names.
SOURCES = ("ctxbench", "pyproject.toml", "README.md")
SUITE_FOLDERS = ("apps", "scripts", "loadtests", "microbench", "tests")
# dist-info files that say how this copy was installed, not what the distribution is
INSTALL_RECORDS = ("INSTALLER", "REQUESTED", "RECORD", "direct_url.json")
TIMEOUT_S = 180


def offline_env(**extra: str) -> dict[str, str]:
    """This environment without pip's configuration (its indexes, find-links, constraints): nothing but `extra`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def build_wheel(into: Path, scratch: Path) -> Path:
    """ctxbench's wheel, built from a copy of what it is made of (the build writes build/ and egg-info beside it)."""
    source = scratch / "ctxbench-source"
    source.mkdir(parents=True)
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    command.append("--no-cache-dir")  # nothing of this build kept in the user's pip cache
    subprocess.run([*command, "-w", str(into), str(source)], env=offline_env(), check=True, timeout=TIMEOUT_S)
    return next(into.glob("ctxbench-*.whl"))


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def repack(distribution: str, into: Path) -> Path:
    """A wheel of an installed distribution, made of its installed files (no compiled bytecode, no install records)."""
    dist = importlib.metadata.distribution(distribution)
    tags = [
        line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines() if line[:4] == "Tag:"
    ]
    tag = tags[0]  # the wheel pip installed here: its first tag fits this interpreter
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"]).lower()
    info = f"{name}-{dist.version}.dist-info"
    wheel = into / f"{name}-{dist.version}-{tag}.whl"
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in dist.files or []:
            path = file.as_posix()
            parts = path.split("/")
            if path.startswith("../") or "__pycache__" in parts or path.endswith(".pyc"):
                continue
            if parts[0].endswith(".dist-info") and parts[-1] in INSTALL_RECORDS:
                continue
            data = Path(dist.locate_file(file)).read_bytes()
            target = path if not parts[0].endswith(".dist-info") else "/".join([info, *parts[1:]])
            archive.writestr(target, data)
            records.append(_record_line(target, data))
        archive.writestr(f"{info}/RECORD", "\n".join([*records, f"{info}/RECORD,,"]) + "\n")
    return wheel


def wheelhouse(into: Path, scratch: Path) -> Path:
    """ctxbench's wheel and one of each runtime dependency, all from this machine."""
    into.mkdir(parents=True)
    wheel = build_wheel(into, scratch)
    for requirement in importlib.metadata.distribution("ctxbench").requires or []:
        if "extra ==" not in requirement:  # the suite's and dev extras are not the tool's
            repack(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0], into)
    return wheel


def fresh_venv(where: Path) -> Path:
    """A virtualenv without pip or anything else: what `pip --python` installs into."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=TIMEOUT_S)
    return where / "bin" / "python"


def pip_install(python: Path, wheels: Path, *requirements: str) -> None:
    """This virtualenv's pip installing into another interpreter's environment, from the wheelhouse alone."""
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--find-links"]
    subprocess.run([*command, str(wheels), *requirements], env=offline_env(), check=True, timeout=TIMEOUT_S)
