"""`ctxbench probe` end to end through the CLI, as users run it: findings, clean apps, a second virtualenv, errors."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import psutil
import pytest

from ctxbench.probing.driver import ProbeUsageError
from ctxbench.probing.sentinel import IDENTITY_PATTERNS
from ctxbench.probing.session import probe_document as probe
from scripts.load.servers import ServerConfig

ROOT = Path(__file__).resolve().parents[1]
PROBE_APPS = ROOT / "tests" / "probe_apps"
REQUESTS = "60"  # per row: pipelined requests start inside earlier ones dozens of times at this budget
# Runs wait for the machine lock (load runs of others hold it): bounded by pytest-timeout (300 s), not by less here.
LEAKING = "uvloop-httptools"  # uvicorn's default: pipelined requests start in the previous request's context


def run_probe(*args: str, timeout: float = 280) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "scripts.cli", "probe", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ctxbench probe: error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def stale_names(document: dict) -> set[str]:
    return {item["name"] for server in document["servers"] for row in server["rows"] for item in row["stale"]}


def test_finds_the_stale_user_contextvar_of_contextvar_conditional(tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    done = run_probe(
        "apps.contextvar_conditional:app",
        *("--server", LEAKING, "--identity-header", "X-User-ID", "--requests", REQUESTS, "--json", str(out)),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    document = json.loads(out.read_text())
    pipelined = next(row for row in document["servers"][0]["rows"] if row["kind"] == "pipelined")
    user = next(item for item in pipelined["stale"] if item["name"] == "user_id")
    assert user["module"] == "apps.contextvar_conditional"
    assert user["type"] == "str" and user["count"] > 0 and len(next(iter(user["hashes"]))) == 12
    assert pipelined["data_leaks"] > 0  # another request's X-User-ID visible inside this one
    assert "values" not in user  # values only with --show-values
    assert "user_id" in done.stdout and LEAKING in done.stdout


@pytest.mark.parametrize("app", ["request_state", "contextvar_isolated"])
def test_reports_clean_apps_as_clean(app: str, tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    done = run_probe(
        f"apps.{app}:app",
        *("--server", LEAKING, "--path", "/items/1", "--stream-path", "/stream/1", "--post-path", "/items/1"),
        *("--identity-header", "X-User-ID", "--requests", REQUESTS, "--json", str(out)),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(out.read_text())
    rows = document["servers"][0]["rows"]
    assert {row["kind"] for row in rows} == {"concurrent", "pipelined", "post", "stream", "stream-pipelined"}
    assert all(row["answered"] == row["sent"] == int(REQUESTS) and row["seen"] == row["sent"] for row in rows)
    assert not stale_names(document) and not document["stale_found"]
    if app == "contextvar_isolated":
        # the server hands over a stale context; the app's fresh Context per request makes it unused
        assert sum(row["isolated"] for row in rows) > 0


def test_names_the_observability_library_contextvar(tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    done = run_probe(
        "loguru_app:app",
        *("--app-dir", str(PROBE_APPS), "--server", LEAKING, "--identity-header", "X-User-ID"),
        *("--requests", REQUESTS, "--json", str(out), "--show-values"),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    document = json.loads(out.read_text())
    found = [item for row in document["servers"][0]["rows"] for item in row["stale"]]
    loguru = next(item for item in found if item["name"] == "loguru_context")
    assert loguru["module"].startswith("loguru") and loguru["type"] == "dict" and loguru["data_leaks"] > 0
    assert any(re.search(IDENTITY_PATTERNS["uuid"], value) for value in loguru["values"])  # --show-values
    assert "loguru_context" in done.stdout


def _venv(where: Path, with_deps: bool) -> Path:
    """A virtualenv without ctxbench; with_deps: ctxbench's site-packages on its path through a .pth file."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=60)
    python = where / "bin" / "python"
    if with_deps:
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # A directory added by a .pth line does not get its own .pth files processed: ctxbench's editable finder
        # there is inert, so fastapi and the servers import but `apps` and `scripts` do not.
        (Path(purelib) / "ctxbench_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.fixture(scope="module")
def foreign_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv(tmp_path_factory.mktemp("venv") / "svc-venv", with_deps=True)


def test_probes_an_app_in_a_second_virtualenv_without_ctxbench(foreign_python: Path, tmp_path: Path) -> None:
    check = "import fastapi, uvicorn\ntry:\n import scripts\nexcept ImportError:\n print('no-ctxbench')"
    done = subprocess.run([str(foreign_python), "-c", check], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.strip() == "no-ctxbench", done.stderr
    service = tmp_path / "service"  # the user's project, outside the repository
    service.mkdir()
    shutil.copy(PROBE_APPS / "set_only_app.py", service / "main.py")
    out = tmp_path / "probe.json"
    done = run_probe(
        "main:app",
        *("--python", str(foreign_python), "--app-dir", str(service), "--server", "asyncio-h11"),
        *("--identity-header", "X-Tenant-ID", "--requests", REQUESTS, "--json", str(out)),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    document = json.loads(out.read_text())
    assert document["python"] == str(foreign_python)
    tenant = next(item for row in document["servers"][0]["rows"] for item in row["stale"] if item["name"] == "tenant")
    assert tenant["module"] == "main" and tenant["data_leaks"] > 0
    assert not list(service.glob("__pycache__")) and sorted(p.name for p in service.iterdir()) == ["main.py"]


def test_a_server_not_installed_in_that_interpreter_exits_2(tmp_path: Path) -> None:
    bare = _venv(tmp_path / "bare", with_deps=False)
    line = one_error_line(
        run_probe("plain_asgi:app", "--python", str(bare), "--app-dir", str(PROBE_APPS), "--server", LEAKING)
    )
    assert "uvicorn" in line and "not installed" in line


def test_the_reset_labels_work_in_a_foreign_virtualenv(foreign_python: Path) -> None:
    """ctxbench's gunicorn reset worker is copied beside the sentinel: no `apps.workers` needed in that virtualenv."""
    args = ("--python", str(foreign_python), "--app-dir", str(PROBE_APPS), "--server", "gunicorn-uvicorn-reset")
    done = run_probe("plain_asgi:app", *args, "--requests", "8")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no stale state on: gunicorn-uvicorn-reset" in done.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("nosuchmodule:app", "--app-dir", str(PROBE_APPS)), "cannot import 'nosuchmodule'"),
        (("plain_asgi:nope", "--app-dir", str(PROBE_APPS)), "no attribute 'nope'"),
        (("broken_import:app", "--app-dir", str(PROBE_APPS)), "DATABASE_URL is not set"),
        (("broken_startup:app", "--app-dir", str(PROBE_APPS)), "failed at startup: RuntimeError: database unreachable"),
        (("plain_asgi:app", "--app-dir", str(PROBE_APPS), "--server", "no-such-label"), "unknown server label"),
        (("plain_asgi:app", "--python", "/nonexistent/bin/python"), "no Python interpreter"),
        (("plain_asgi", "--app-dir", str(PROBE_APPS)), "MODULE:APP"),
        (("plain_asgi:app", "--requests", "0"), "--requests"),
    ],
    ids=[
        "no-module",
        "no-attribute",
        "raises-at-import",
        "fails-at-startup",
        "unknown-label",
        "no-python",
        "no-colon",
        "zero",
    ],
)
def test_bad_usage_exits_2_with_one_line(args: tuple[str, ...], expected: str) -> None:
    if "--server" not in args:
        args = (*args, "--server", "asyncio-h11")
    line = one_error_line(run_probe(*args))
    assert expected in line


def test_argparse_usage_errors_exit_2() -> None:
    done = run_probe("--no-such-option")
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_a_server_that_does_not_start_exits_2() -> None:
    broken = ServerConfig("broken-uvicorn", "uvicorn", ("--no-such-uvicorn-option",))
    with pytest.raises(ProbeUsageError, match="server broken-uvicorn did not start"):
        probe("plain_asgi:app", [broken], python=sys.executable, app_dir=PROBE_APPS, paths=["/"], requests=5)


def _command_line(process: psutil.Process) -> str:
    """A child's command line, or '' for one that ended meanwhile (the probe's short checks of the interpreter)."""
    try:
        return " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return ""


def test_ctrl_c_stops_every_server_and_leaves_nothing() -> None:
    command = [sys.executable, "-m", "scripts.cli", "probe", "plain_asgi:app", "--app-dir", str(PROBE_APPS)]
    command += ["--server", "asyncio-h11", "--requests", "100000"]
    probe_process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    servers: list[psutil.Process] = []
    try:
        parent = psutil.Process(probe_process.pid)
        deadline = time.monotonic() + 90  # the machine lock may be held by another run for a while
        while not servers and time.monotonic() < deadline and probe_process.poll() is None:
            servers = [p for p in parent.children(recursive=True) if "uvicorn" in _command_line(p)]
            time.sleep(0.2)
        assert servers, "the probe never started its server"
        time.sleep(1.0)  # mid-traffic
        probe_process.send_signal(signal.SIGINT)
        _, stderr = probe_process.communicate(timeout=60)
    finally:
        if probe_process.poll() is None:
            probe_process.kill()
            probe_process.wait()
        left = [server for server in servers if server.is_running() and server.status() != psutil.STATUS_ZOMBIE]
        for server in left:  # after looking: a failing run must not leave its server behind either
            with contextlib.suppress(psutil.Error):
                server.kill()
    assert probe_process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert not left
