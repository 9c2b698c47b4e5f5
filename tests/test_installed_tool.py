"""ctxbench installed as a tool, as a new user does it: a wheel in a fresh virtualenv outside the clone, no index.

The wheel is built from the clone and installed with its one dependency from a local wheelhouse (tests/installed.py),
then its `ctxbench probe` runs from a directory outside the clone on a small app of a "user's project", served by an
interpreter that has the servers (this virtualenv's, standing in for the user's). The README's GitHub Actions snippet
is run the same way, line by line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import installed

ROOT = Path(__file__).resolve().parents[1]
PROBE_APPS = ROOT / "tests" / "probe_apps"
LEAKING, FIXED = "uvloop-httptools", "uvloop-httptools-reset"  # uvicorn's default, and with --reset-contextvars
REQUESTS = "60"  # per row: pipelined requests start inside earlier ones dozens of times at this budget
TIMEOUT_S = 280  # a run may wait for the machine lock (another ctxbench run): pytest-timeout bounds the rest


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("wheels")
    installed.wheelhouse(where / "wheelhouse", where)
    return where / "wheelhouse"


@pytest.fixture(scope="module")
def tool(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `ctxbench` command of a fresh virtualenv that holds ctxbench's wheel and nothing of the clone."""
    python = installed.fresh_venv(tmp_path_factory.mktemp("tool") / "venv")
    installed.pip_install(python, wheelhouse, "ctxbench")
    return python.parent / "ctxbench"


def user_project(where: Path, fixed: bool = False) -> Path:
    """A user's project outside the clone: `main.py`, an app that sets a tenant ContextVar and never clears it, or
    (`fixed`) the same app run in a fresh Context per request."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "set_only_app.py").write_text((PROBE_APPS / "set_only_app.py").read_text())
    main = PROBE_APPS / ("fresh_context_app.py" if fixed else "set_only_app.py")
    (where / "main.py").write_text(main.read_text())
    return where


def site_packages(tool: Path) -> Path:
    return next((tool.parent.parent / "lib").glob("python3*/site-packages"))


def tree(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def test_the_wheel_installs_ctxbench_alone(tool: Path, tmp_path: Path) -> None:
    packages = site_packages(tool)
    record = next(packages.glob("ctxbench-*.dist-info")) / "RECORD"
    top = {line.split(",")[0].split("/")[0] for line in record.read_text().splitlines() if line}
    # the package, its metadata, and the console script (recorded relative to site-packages: ../../bin/ctxbench)
    assert top == {"ctxbench", record.parent.name, ".."}, top
    assert not top & set(installed.SUITE_FOLDERS)
    assert not any((packages / name).exists() for name in installed.SUITE_FOLDERS)
    python = tool.parent / "python"
    done = subprocess.run(
        [str(python), "-c", "import ctxbench.probing.api, ctxbench.cli\nimport scripts"],
        cwd=tmp_path,  # `-c` imports from the working directory first: not the clone's
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "No module named 'scripts'" in done.stderr, done.stderr  # a user's `scripts` is never shadowed


def test_the_installed_probe_finds_stale_state_and_passes_the_fix(tool: Path, tmp_path: Path) -> None:
    project = user_project(tmp_path / "svc")
    elsewhere = tmp_path / "elsewhere"  # the working directory: outside the clone and the project
    elsewhere.mkdir()
    before = tree(site_packages(tool))

    def probe(server: str) -> subprocess.CompletedProcess[str]:
        command = [str(tool), "probe", "main:app", "--python", sys.executable, "--app-dir", str(project)]
        command += ["--server", server, "--identity-header", "X-Tenant-ID", "--requests", REQUESTS]
        command += ["--json", f"{server}.json"]
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        return subprocess.run(
            command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )

    stale = probe(LEAKING)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert f"stale state found on: {LEAKING}" in stale.stdout and "Traceback" not in stale.stderr
    document = json.loads((elsewhere / f"{LEAKING}.json").read_text())
    tenant = [item for row in document["servers"][0]["rows"] for item in row["stale"] if item["name"] == "tenant"]
    assert tenant and tenant[0]["module"] == "main"
    environment = document["environment"]  # recorded without the clone: ctxbench's release, the app's servers
    assert environment["ctxbench"] == "0.1.0" and environment["app_packages"]["uvicorn"]
    assert "git" not in environment

    fixed = probe(FIXED)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"no stale state on: {FIXED}" in fixed.stdout

    # results went where the user said; nothing was written into site-packages or the user's project
    assert sorted(path.name for path in elsewhere.iterdir()) == sorted([f"{LEAKING}.json", f"{FIXED}.json"])
    assert tree(site_packages(tool)) == before
    assert sorted(path.name for path in project.iterdir()) == ["main.py", "set_only_app.py"]


def test_the_installed_tool_says_in_one_line_that_suite_commands_need_the_clone(tool: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(tool), "load"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1 and "need a clone" in done.stderr
    usage = subprocess.run(
        [str(tool), "probe", "nocolon"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert usage.returncode == 2 and len(usage.stderr.splitlines()) == 1 and "MODULE:APP" in usage.stderr


def workflow() -> dict:
    """The README's GitHub Actions snippet, read as YAML (as GitHub reads it): its `env` and `steps`."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    return yaml.safe_load(next(block for block in blocks if "ctxbench probe" in block))


def test_the_readmes_github_actions_steps_install_the_tool_and_probe(wheelhouse: Path, tmp_path: Path) -> None:
    """The steps as written, in a checkout of a user's app with its .venv; what GitHub provides comes from here:
    RUNNER_TEMP, and pip's index (CTXBENCH_SPEC resolved from the local wheelhouse, with no index at all)."""
    snippet = workflow()
    install, *probes = [step["run"] for step in snippet["steps"]]
    assert "$CTXBENCH_SPEC" in install and probes and all("ctxbench probe" in line for line in probes)
    assert "clone" not in install and "make" not in install.split()
    checkout = user_project(tmp_path / "checkout")
    # the app's virtualenv, as the job built it: one with FastAPI and uvicorn (this one)
    (checkout / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    env = installed.offline_env(
        RUNNER_TEMP=str(runner_temp),
        CTXBENCH_SPEC=snippet["env"]["CTXBENCH_SPEC"],  # `ctxbench`, found in the wheelhouse
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheelhouse),
    )
    env.pop("PYTHONPATH", None)

    def step(line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-e", "-c", line], cwd=checkout, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )

    done = step(install)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in probes:  # the app leaks (a tenant ContextVar set, never cleared): the job fails
        done = step(line)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "stale state found" in done.stdout
    assert (checkout / "probe.json").is_file()
    user_project(checkout, fixed=True)  # the fix that needs no server setting: the job passes
    for line in probes:
        done = step(line)
        assert done.returncode == 0, done.stdout + done.stderr
