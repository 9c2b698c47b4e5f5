"""Distributed load: locust's master with two workers against one variant; leaks found by workers reach the master.

The commands are the README's ("Locust directly"): a headless master expecting two workers, two workers pointed at
it. The leak checker runs in the workers; the master only aggregates, so a leak must arrive there under its failure
name (`checkpoint.field:leak`, in `--csv`'s failures file and `--json-file`) and decide the master's exit code.
The second part runs server, master and workers in network namespaces of their own, as separate hosts on a private
subnet the test creates (and always deletes), when this machine lets the test create namespaces.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from apps.harness import registry
from scripts.common.environment import ROOT
from scripts.common.lock import exclusive_run
from scripts.load import servers
from scripts.load.process import Managed, free_port, in_group, serve
from scripts.load.settings import GENERATOR_CPUS, HOST, SERVER_CPUS

LOCUSTFILE = str(ROOT / "loadtests" / "locustfile.py")
USERS = 4
RUN_S = 5  # locust's -t: enough for a leak to show on the pipelining path and in plain GETs of the control
EXIT_BOUND_S = RUN_S + 30.0  # the master starts the clock once both workers are in; then it must exit by itself
LEAK_NAME = re.compile(r"\b[a-z]+\.[a-z_]+:leak\b")


def master_command(host_url: str, bind: str, port: int, out: Path, scenario: str) -> list[str]:
    command = [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--master", "--expect-workers", "2"]
    command += ["--master-bind-host", bind, "--master-bind-port", str(port), "--headless"]
    command += ["-u", str(USERS), "-r", str(USERS), "-t", f"{RUN_S}s", "--host", host_url, "--only-summary"]
    return [*command, "--json-file", str(out / "master"), "--csv", str(out / "master"), "--ctx-scenario", scenario]


def worker_command(master: str, port: int) -> list[str]:
    command = [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--worker"]
    return [*command, "--master-host", master, "--master-port", str(port)]


def failure_names(out: Path) -> dict[str, int]:
    """Every failure the master aggregated, by its message (the sorted checkpoint.field:verdict names)."""
    with open(out / "master_failures.csv", newline="") as handle:
        return {row["Error"]: int(row["Occurrences"]) for row in csv.DictReader(handle)}


def json_failures(out: Path) -> int:
    return sum(entry["num_failures"] for entry in json.loads((out / "master.json").read_text()))


def drive(host_url: str, out: Path, scenario: str, prefix: dict[str, list[str]] | None = None, **where: str) -> int:
    """Master and two workers (each under `prefix[role]`, e.g. `ip netns exec`), pinned to the generator cores,
    started and stopped by PID; the master's exit code (None if it overran its bound)."""
    prefix = prefix or {}
    port = int(where.get("port", free_port()))
    bind, master_host = where.get("bind", HOST), where.get("master", HOST)
    master = Managed(
        [*prefix.get("master", []), *master_command(host_url, bind, port, out, scenario)],
        GENERATOR_CPUS,
        out / "master.log",
    )
    workers = [
        Managed(
            [*prefix.get(f"worker{n}", []), *worker_command(master_host, port)], GENERATOR_CPUS, out / f"worker{n}.log"
        )
        for n in (1, 2)
    ]
    started = [master, *workers]
    try:
        try:
            code = master.process.wait(timeout=EXIT_BOUND_S)
        except subprocess.TimeoutExpired:
            code = None
        for worker in workers:  # a worker quits when its master does
            try:
                worker.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
    finally:
        pids = [pid for process in started for pid in process.stop()]
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    assert not any(in_group(process.pid) for process in started)
    if code is None:
        pytest.fail("the master overran its bound:\n" + master.log_tail())
    return code


@pytest.mark.parametrize(
    ("variant", "scenario", "leaks"),
    [("global_state", "get", True), ("contextvar_snapshot", "each", False)],
    ids=["the-control-leaks", "isolated-is-clean"],
)
def test_master_with_two_workers_reports_worker_leaks_by_name(
    tmp_path: Path, variant: str, scenario: str, leaks: bool
) -> None:
    port = free_port()
    with exclusive_run(), serve(registry.get(variant), servers.DEFAULT, port, SERVER_CPUS):
        code = drive(f"http://{HOST}:{port}", tmp_path, scenario)
    names = failure_names(tmp_path)
    if leaks:
        assert any(LEAK_NAME.search(name) for name in names), names
        assert json_failures(tmp_path) > 0
        assert code != 0
    else:
        assert names == {} and json_failures(tmp_path) == 0
        assert code == 0, (tmp_path / "master.log").read_text()[-2000:]
    # both workers ran users: each wrote a log and the master saw requests from two workers' reports
    assert sum(entry["num_requests"] for entry in json.loads((tmp_path / "master.json").read_text())) > 0


# --- separate hosts: one network namespace per role ---------------------------------------------------------
SUBNET = "10.213.7"  # private, only ever inside the namespaces below (they have no route anywhere else)
ROLES = {"server": 1, "master": 2, "worker1": 3, "worker2": 4}


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def namespaces() -> Iterator[dict[str, str]]:
    """One namespace per role plus a hub with a bridge, veth pairs between them; deleted whatever happens."""
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2): cannot create network namespaces here")
    tag = f"ctxbench-test-{os.getpid()}"
    names = {role: f"{tag}-{role}" for role in ROLES}
    hub = f"{tag}-hub"
    created: list[str] = []
    try:
        try:
            ip("netns", "add", hub)
        except (subprocess.CalledProcessError, OSError) as error:
            reason = getattr(error, "stderr", b"") or str(error).encode()
            pytest.skip(f"cannot create network namespaces here (`ip netns add` failed: {reason.decode().strip()})")
        created.append(hub)
        ip("-n", hub, "link", "add", "br0", "type", "bridge")
        ip("-n", hub, "link", "set", "br0", "up")
        for role, host in ROLES.items():
            ip("netns", "add", names[role])
            created.append(names[role])
            # a veth pair made inside the role's namespace, its peer moved to the hub and put on the bridge
            ip("-n", names[role], "link", "add", "eth0", "type", "veth", "peer", "name", f"p{host}")
            ip("-n", names[role], "link", "set", f"p{host}", "netns", hub)
            ip("-n", hub, "link", "set", f"p{host}", "master", "br0", "up")
            ip("-n", names[role], "addr", "add", f"{SUBNET}.{host}/24", "dev", "eth0")
            ip("-n", names[role], "link", "set", "eth0", "up")
            ip("-n", names[role], "link", "set", "lo", "up")
        yield names
    finally:
        for name in reversed(created):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10, check=False)


def wait_reachable(namespace: str, url: str, bound_s: float = 20.0) -> None:
    probe = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=1)"
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if (
            subprocess.run(
                ["ip", "netns", "exec", namespace, sys.executable, "-c", probe], capture_output=True
            ).returncode
            == 0
        ):
            return
        time.sleep(0.2)
    pytest.fail(f"{url} not reachable from {namespace}")


def test_server_master_and_workers_on_separate_hosts(tmp_path: Path, namespaces: dict[str, str]) -> None:
    prefix = {role: ["ip", "netns", "exec", name] for role, name in namespaces.items()}
    server_ip, master_ip = f"{SUBNET}.{ROLES['server']}", f"{SUBNET}.{ROLES['master']}"
    port, master_port = 8000, 5557  # fixed: every namespace has its own ports
    config = servers.DEFAULT
    command = [*prefix["server"], *config.command(f"{registry.get('global_state').module}:app", server_ip, port)]
    with exclusive_run():
        server = Managed(command, SERVER_CPUS, tmp_path / "server.log")
        try:
            wait_reachable(namespaces["master"], f"http://{server_ip}:{port}/healthz")
            where = {"port": str(master_port), "bind": master_ip, "master": master_ip}
            code = drive(f"http://{server_ip}:{port}", tmp_path, "get", prefix, **where)
        finally:
            pids = server.stop()
    assert pids and not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids
    )
    names = failure_names(tmp_path)
    assert any(LEAK_NAME.search(name) for name in names), names
    assert code != 0
