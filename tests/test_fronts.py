"""Reverse proxies in front of a real server: each starts on 127.0.0.1, forwards requests, and leaves nothing behind;
the front dimension of the leak hunt's plan; a proxy that is not installed is skipped with the install command."""

from __future__ import annotations

import argparse
import re
import urllib.request
from pathlib import Path

import psutil
import pytest

from apps.harness import origin, registry, traffic
from apps.harness.contract import HEALTH_PATH
from loadtests.pipeline import PipelineClient
from loadtests.validation import judge
from scripts.common.lock import exclusive_run
from scripts.load import bounded_run, fronts, load, sweep
from scripts.load import servers as serverconfig
from scripts.load.process import free_port, fronting, in_group, serve
from scripts.load.settings import FRONT_CPUS, HOST, SERVER_CPUS

CLEAN_VARIANT = "contextvar_snapshot"  # all ok on every server: any failure through a front is the front's doing
BATCHES, DEPTH = 6, 4


def _gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)


def through(port: int, prefix: str) -> list[str]:
    """Pipelined batches of every kind (GET, small POST, stream) through the front, judged by the checker."""
    client = PipelineClient(f"http://{HOST}:{port}")
    found: list[str] = []
    try:
        for batch in range(BATCHES):
            seqs = range(batch * DEPTH, (batch + 1) * DEPTH)
            specs = [traffic.request(traffic.KINDS[s % 3], prefix, s, anonymous=s % 2 == 1) for s in seqs]
            for spec, timed in zip(specs, client.exchange(specs), strict=True):
                found += judge(spec, timed.response.status, timed.response.headers, timed.response.body)
    finally:
        client.close()
    return found


@pytest.mark.parametrize("front", fronts.PROXIES, ids=lambda front: front.label)
def test_each_proxy_forwards_to_a_real_server_and_leaves_no_process(front: fronts.Front) -> None:
    if front.missing():
        pytest.skip(front.missing())
    port = free_port()
    variant = registry.get(CLEAN_VARIANT)
    with exclusive_run(), serve(variant, serverconfig.DEFAULT, port, SERVER_CPUS) as server:
        with fronting(front, port, FRONT_CPUS) as fronted:
            assert fronted.port != port and fronted.process is not None
            with urllib.request.urlopen(f"http://{HOST}:{fronted.port}{HEALTH_PATH}", timeout=5) as response:
                assert response.status == 200
            found = through(fronted.port, f"front-{front.label}")
            pids = list(fronted.process.seen)
            config = fronted.config or ""
            described = fronted.as_dict()
        assert server.process.poll() is None, "stopping the front must not stop the server"
    assert found == [], f"{front.label}: {sorted(set(found))}"
    assert len(pids) >= 1 and _gone(pids) and not in_group(pids[0])
    assert described["config"] == config and described["version"] and described["command"][0].endswith(front.kind)
    listening = re.findall(r"(?:listen|bind|server)\s+(?:\w+\s+)?([0-9.]+):", config)
    assert listening and set(listening) == {HOST}, listening
    for line in front.options:
        assert line in config


def test_configs_keep_upstream_connections_alive_as_users_do() -> None:
    prefix = Path("/tmp/prefix")
    nginx = fronts.NGINX_DEFAULT.render(prefix, 8001, 8002, HOST)
    for directive in ("keepalive 16;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";', "daemon off;"):
        assert directive in nginx
    assert "proxy_buffering" not in nginx, "the default front keeps nginx's default buffering"
    unbuffered = fronts.NGINX_UNBUFFERED.render(prefix, 8001, 8002, HOST)
    assert "proxy_buffering off;" in unbuffered and "proxy_request_buffering off;" in unbuffered
    assert "http-reuse" not in fronts.HAPROXY_SAFE.render(prefix, 8001, 8002, HOST)
    assert "http-reuse always" in fronts.HAPROXY_ALWAYS.render(prefix, 8001, 8002, HOST)
    assert "mode http" in fronts.HAPROXY_SAFE.render(prefix, 8001, 8002, HOST)
    with pytest.raises(KeyError, match="unknown front"):
        fronts.get("apache")


def test_a_missing_proxy_is_skipped_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fronts, "SEARCH_PATH", "/nonexistent")
    assert fronts.DIRECT_FRONT.missing() is None
    assert fronts.INSTALL in (fronts.NGINX_DEFAULT.missing() or "")
    parser = argparse.ArgumentParser()
    load.add_arguments(parser)
    args = parser.parse_args(["--variant", CLEAN_VARIANT, "--front", "nginx"])
    assert load.run(args) == 2
    assert fronts.INSTALL in capsys.readouterr().out
    specs = [s for s in sweep.plan(sweep.QUICK, (CLEAN_VARIANT,), ("get",), (fronts.HAPROXY_SAFE,))][:2]
    assert sweep.run_all(specs, dry_run=False) == 0, "a skipped front is not a failed run"
    out = capsys.readouterr().out
    assert out.count("SKIPPED") == len(specs) and fronts.INSTALL in out


def test_the_hunt_runs_direct_everywhere_and_every_proxy_on_the_fronted_configurations() -> None:
    variants = tuple(variant.name for variant in registry.VARIANTS)
    specs = list(sweep.plan(sweep.QUICK, variants, tuple(sweep.scenarios.SCENARIOS)))
    cells = {(s.config.label, s.front.label) for s in specs}
    hunt = {config.label for config in serverconfig.LEAK_HUNT}
    fronted = {config.label for config in serverconfig.FRONTED}
    assert {label for label, front in cells if front == fronts.DIRECT_FRONT.label} == hunt
    for proxy in fronts.PROXIES:
        assert {label for label, front in cells if front == proxy.label} == fronted
    # loop and parser apart, each with its fixed twin, in the hunt and behind the fronts
    for label in ("asyncio-httptools", "uvloop-h11"):
        twin = serverconfig.get(label).reset_twin
        assert twin and {label, twin} <= hunt & fronted
        assert serverconfig.get(twin).reset_setting == serverconfig.RESET_FLAG
    assert fronted <= hunt
    behind = set(registry.tagged(registry.BEHIND_PROXY))  # the approaches, a pitfall and the negative control
    assert {s.variant for s in specs if not s.front.is_direct} == behind
    assert {"global_state", "contextvar_asgi", "contextvar_isolated", "request_state", "explicit"} <= behind
    only = list(sweep.plan(sweep.QUICK, variants, tuple(sweep.scenarios.SCENARIOS), (fronts.NGINX_DEFAULT,)))
    assert {s.front for s in only} == {fronts.NGINX_DEFAULT} and len(only) == len(behind) * len(fronted)
    full = list(sweep.plan(sweep.FULL, variants[:1], ("get",)))
    assert {s.front for s in full} == {fronts.DIRECT_FRONT}


def test_dry_run_prints_the_front_of_every_run(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    sweep.add_arguments(parser)
    args = parser.parse_args(["--dry-run", "--variant", CLEAN_VARIANT, "--front", "direct", "--front", "nginx"])
    assert sweep.run(args) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " u=" in line]  # runs, not the estimate
    fronted = len(serverconfig.FRONTED)
    assert len(lines) == len(serverconfig.LEAK_HUNT) + fronted
    assert sum("front=nginx " in line for line in lines) == fronted


def test_a_locust_run_behind_a_proxy_records_the_front_and_catches_another_clients_data() -> None:
    """The negative control (a module-level dict) behind nginx: concurrent clients overwrite each other's values, so
    its leaks must be traced to another client connection; the run records the front and leaves nothing behind."""
    front = fronts.NGINX_DEFAULT
    if front.missing():
        pytest.skip(front.missing())
    (control,) = [v.name for v in registry.VARIANTS if v.category == registry.CONTROL and not v.exact]
    spec = bounded_run.RunSpec(control, "get", 4, 2.0, 0.5, serverconfig.DEFAULT, tag="test", front=front)
    with exclusive_run():
        result = bounded_run.execute(spec)
    assert result["processes"]["started"] and result["processes"]["left_behind"] == []
    assert result["front"]["label"] == front.label and "keepalive" in result["front"]["config"]
    assert result["run"]["front"]["label"] == front.label
    total = result["failures_total"]
    assert total["leak"] > 0 and total["cross_client"] > 0
    assert total["cross_client"] == total["origins"][origin.OTHER_CLIENT]
    assert "cross_client=" in bounded_run.one_line(result)
