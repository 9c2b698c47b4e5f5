"""Serve the sentinel-wrapped app in the user's interpreter under one server configuration, drive it, collect."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ctxbench.environment import APP_PACKAGES
from ctxbench.probing import sentinel
from ctxbench.probing.traffic import Row, RowResult, run_row
from ctxbench.serving import servers
from ctxbench.serving.fronts import DIRECT_FRONT, Front
from ctxbench.serving.process import Managed, NotServing, free_port, fronting, wait_answering
from ctxbench.serving.servers import ServerConfig
from ctxbench.serving.settings import FRONT_CPUS, HEALTH_TIMEOUT_S, HOST, SERVER_CPUS

SENTINEL_MODULE = "ctxbench_probe_sentinel"  # a name no service uses: it sits first on the server's PYTHONPATH
# ctxbench's gunicorn reset workers (ctxbench/workers.py), copied beside the sentinel: the `-reset` labels then run in
# any virtualenv that has gunicorn and uvicorn-worker, not only in one where ctxbench itself is importable.
WORKERS_MODULE = "ctxbench_probe_workers"
WORKERS_SOURCE = "ctxbench.workers"
CTXBENCH_WORKERS = servers.RESET_WORKER.rpartition(".")[0]  # the suite's name for it in the labels' options
PREFLIGHT_TIMEOUT_S = 60.0  # importing a large app once, in the user's interpreter


class ProbeUsageError(RuntimeError):
    """Bad usage, or a target that cannot be served (an app that does not import, a server not installed): the one
    exception the probe raises for what the CLI reports as one line and exit code 2."""


@dataclass(frozen=True, slots=True)
class Target:
    """What to serve and where: the app, the user's interpreter and project root, the sentinel's settings."""

    app: str
    python: str
    app_dir: Path
    workdir: Path  # a temporary directory: the sentinel module, and one folder of reports per server
    identity: tuple[str, ...] = ()
    show_values: bool = False
    traceback: bool = False
    identity_format: str = sentinel.DEFAULT_IDENTITY_FORMAT

    @property
    def sentinel_dir(self) -> Path:
        return self.workdir / "sentinel"

    def environment(self, report_dir: Path) -> dict[str, str]:
        # The user's project root next to the sentinel and nothing of ctxbench's: its packages would shadow theirs.
        # A PYTHONPATH the user set is kept after the app directory: some apps import only through it.
        inherited = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
        return {
            "PYTHONPATH": os.pathsep.join([str(self.sentinel_dir), str(self.app_dir), *inherited]),
            "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ left in the user's project by the probe
            sentinel.APP_ENV: self.app,
            sentinel.DIR_ENV: str(report_dir),
            sentinel.IDENTITY_ENV: ",".join(self.identity),
            sentinel.SHOW_VALUES_ENV: "1" if self.show_values else "",
            sentinel.TRACEBACK_ENV: "1" if self.traceback else "",
            sentinel.IDENTITY_FORMAT_ENV: self.identity_format,
            sentinel.VERSIONS_ENV: ",".join(APP_PACKAGES),
        }


@dataclass
class ServerResult:
    config: ServerConfig
    command: list[str]
    rows: list[tuple[str, RowResult]] = field(default_factory=list)  # (phase, result)
    reports: list[dict] = field(default_factory=list)  # one per server process that served requests
    front: dict = field(default_factory=DIRECT_FRONT.as_dict)  # the reverse proxy before it (label, version, config)


def install_sentinel(target: Target) -> None:
    target.sentinel_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sentinel.__file__, target.sentinel_dir / f"{SENTINEL_MODULE}.py")
    spec = importlib.util.find_spec(WORKERS_SOURCE)  # located, not imported: it imports uvicorn_worker
    if spec is not None and spec.origin is not None:
        shutil.copyfile(spec.origin, target.sentinel_dir / f"{WORKERS_MODULE}.py")


def served_command(config: ServerConfig, host: str, port: int, python: str) -> list[str]:
    """The server's command line, with ctxbench's reset worker class pointing at the copy beside the sentinel."""
    command = config.command(f"{SENTINEL_MODULE}:app", host, port, python)
    prefix = CTXBENCH_WORKERS + "."
    return [WORKERS_MODULE + "." + part[len(prefix) :] if part.startswith(prefix) else part for part in command]


def required_modules(config: ServerConfig) -> list[str]:
    """What `python -m <server> <options>` needs importable: the server, and the loop/parser/worker it names."""
    needed = [config.server.name]  # every kind's module is its name (`python -m uvicorn`, `-m granian`, ...)
    for flag, value in zip(config.options, config.options[1:], strict=False):
        if flag == "--loop" and value == "uvloop":
            needed.append("uvloop")
        elif flag == "--http" and value == "httptools":
            needed.append("httptools")
        elif flag == "--worker-class" and config.kind == "gunicorn":
            module = value.rpartition(".")[0]
            # the copied reset worker subclasses uvicorn-worker's
            needed += [WORKERS_MODULE, "uvicorn_worker"] if module == CTXBENCH_WORKERS else [module]
        elif flag == "--worker-class" and value == "uvloop":
            needed.append("uvloop")
    return needed


def preflight(target: Target, configs: list[ServerConfig]) -> dict:
    """One run of the sentinel in the user's interpreter: the app imports, every asked-for server is installed."""
    modules = sorted({name for config in configs for name in required_modules(config)})
    command = [target.python, str(target.sentinel_dir / f"{SENTINEL_MODULE}.py"), "--preflight", *modules]
    env = {**os.environ, **target.environment(target.workdir)}
    try:
        done = subprocess.run(
            command,
            cwd=target.app_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=PREFLIGHT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise ProbeUsageError(f"no Python interpreter at {target.python}") from None
    except PermissionError:
        raise ProbeUsageError(f"{target.python} is not executable") from None
    except subprocess.TimeoutExpired:
        raise ProbeUsageError(f"importing {target.app} took longer than {PREFLIGHT_TIMEOUT_S:.0f}s") from None
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProbeUsageError(f"{target.python} could not run the probe's sentinel: {tail}") from None
    if answer["error"]:
        raise ProbeUsageError(f"{answer['error']} (app dir {target.app_dir}, python {target.python})")
    for config in configs:
        missing = [name for name in required_modules(config) if name in answer["missing"]]
        if missing:
            raise ProbeUsageError(
                f"server {config.label} needs {', '.join(missing)}, not installed for {target.python}"
                f" (install it in that environment, choose another --server, or pass --python: your app's interpreter)"
            )
    return answer


def _status_error(report_dir: Path) -> str | None:
    for path in sorted(report_dir.glob("status-*.json")):
        with contextlib.suppress(OSError, ValueError):
            return json.loads(path.read_text())["error"]
    return None


def _failure(server: Managed, report_dir: Path, what: str) -> ProbeUsageError:
    reason = _status_error(report_dir)
    if reason is None:
        lines = [line for line in server.log_tail(40).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else "no output"
    return ProbeUsageError(f"server {what}: {reason}")


def wait_ready(server: Managed, port: int, report_dir: Path, label: str) -> None:
    """Poll the sentinel's own path on fresh connections; the first answer is the baseline request."""
    try:
        wait_answering(server, f"http://{HOST}:{port}{sentinel.READY_PATH}")
    except NotServing as error:
        if error.exit_code is not None:
            raise _failure(server, report_dir, f"{label} did not start (exit code {error.exit_code})") from None
        raise _failure(server, report_dir, f"{label} did not answer within {HEALTH_TIMEOUT_S:.0f}s") from None


def flush(port: int) -> None:
    url = f"http://{HOST}:{port}{sentinel.FLUSH_PATH}"
    with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(url, timeout=5):
        pass


def probe_server(
    target: Target,
    config: ServerConfig,
    rows: list[Row],
    requests: int,
    progress: Callable[[str], None] = lambda line: None,
    front: Front = DIRECT_FRONT,
) -> ServerResult:
    """Start, wait for the sentinel, start the front (if any) before it, send every row through it, flush, stop both
    by PID (whatever happens), read the reports."""
    report_dir = target.workdir / config.label
    report_dir.mkdir(parents=True)
    port = free_port()
    environment = [f"{name}={value}" for name, value in target.environment(report_dir).items()]
    # `env -C` sets the directory and variables, then execs: the PID Managed stops is the server's own.
    served = served_command(config, HOST, port, target.python)
    command = ["env", "-C", str(target.app_dir), *environment, *served]
    result = ServerResult(config, served)
    server = Managed(command, SERVER_CPUS, report_dir / "server.log")
    try:
        wait_ready(server, port, report_dir, config.label)
        server.processes()  # remember the workers now that they are up
        where = config.label if front.is_direct else f"{config.label} via {front.label}"
        with contextlib.ExitStack() as stack:
            try:
                fronted = stack.enter_context(fronting(front, port, FRONT_CPUS, health_path=sentinel.READY_PATH))
            except RuntimeError as error:  # the front did not start or answer: a broken setup, not a verdict
                raise ProbeUsageError(str(error).splitlines()[0]) from None
            result.front = fronted.as_dict()
            for index, row in enumerate(rows):
                phase = f"row{index}"
                started = time.monotonic()
                done = run_row(row, phase, HOST, fronted.port, requests, list(target.identity), target.identity_format)
                result.rows.append((phase, done))
                statuses = ", ".join(f"{code} ×{count}" for code, count in sorted(done.statuses.items())) or "none"
                progress(
                    f"  {where}: {row.label}: {done.answered}/{done.sent} answered ({statuses})"
                    f" in {time.monotonic() - started:.1f}s"
                )
        flush(port)
        if server.process.poll() is not None:
            raise _failure(server, report_dir, f"{config.label} exited during the probe")
    finally:
        server.stop()
    for path in sorted(report_dir.glob("report-*.json")):
        with contextlib.suppress(OSError, ValueError):
            result.reports.append(json.loads(path.read_text()))
    return result
