"""Every server kind starts, serves a variant end to end on 127.0.0.1 and stops with nothing left; leaks by server.

Pipelined batches on one keep-alive connection are the path that leaks on uvicorn's defaults: the next request starts
inside the previous one's final `send`. They are sent with the raw pipelining client, not locust, to keep CI short.
"""

from __future__ import annotations

import psutil
import pytest

from apps.harness import registry, traffic
from apps.harness.checker import LEAK, Failure
from loadtests.pipeline import PipelineClient
from loadtests.validation import judge
from scripts.common.lock import exclusive_run
from scripts.load import servers
from scripts.load.process import free_port, in_group, serve
from scripts.load.settings import HOST, SERVER_CPUS

BATCHES = 12  # pipelined batches per connection
DEPTH = 4  # requests per batch; every kind (GET, small POST, stream) in turn
LEAKING, CLEAN = servers.UVLOOP_HTTPTOOLS, servers.UVLOOP_HTTPTOOLS_RESET  # what the leak hunt shows for uvicorn


def pipelined_failures(port: int, prefix: str) -> list[str]:
    client = PipelineClient(f"http://{HOST}:{port}")
    found: list[str] = []
    try:
        for batch in range(BATCHES):
            specs = [
                traffic.request(traffic.KINDS[seq % len(traffic.KINDS)], prefix, seq, anonymous=seq % 2 == 1)
                for seq in range(batch * DEPTH, (batch + 1) * DEPTH)
            ]
            for spec, timed in zip(specs, client.exchange(specs), strict=True):
                response = timed.response
                found += judge(spec, response.status, response.headers, response.body)
    finally:
        client.close()
    return found


def served(variant: str, config: servers.ServerConfig) -> tuple[list[str], list[int]]:
    """Serve, send pipelined batches, stop; the failures and every PID the server ever had."""
    port = free_port()
    with exclusive_run(), serve(registry.get(variant), config, port, SERVER_CPUS) as server:
        found = pipelined_failures(port, f"{config.label}-{variant}")
        pids = list(server.seen)
    return found, pids


def _gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)


@pytest.mark.parametrize("config", [*servers.PER_KIND, servers.GUNICORN_RESET], ids=lambda c: c.label)
def test_every_server_kind_serves_the_isolated_variant_cleanly_and_leaves_nothing(config: servers.ServerConfig) -> None:
    found, pids = served("contextvar_snapshot", config)
    assert found == [], f"{config.label}: {sorted(set(found))}"
    assert pids and _gone(pids) and not in_group(pids[0])


def apart(found: list[str]) -> tuple[set[str], set[str]]:
    """(the failures that are not a dropped startup value, the dropped ones)."""
    dropped = {name for name in found if Failure.parse(name).is_dropped}
    return set(found) - dropped, dropped


def test_the_task_per_request_isolation_is_clean_on_uvicorn_defaults_too() -> None:
    """contextvar_isolated_task (the previous mechanism, kept for comparison) on the path that leaks by default: no
    leak, but its empty Context hides the app's startup values on the real server too."""
    found, _ = served("contextvar_isolated_task", LEAKING)
    failures, dropped = apart(found)
    assert failures == set() and dropped, sorted(set(found))


def test_pipelining_finds_the_conditional_leak_on_a_leaking_server_and_none_on_a_clean_one() -> None:
    leaky, _ = served("contextvar_conditional", LEAKING)
    assert any(name.startswith("entry.") and name.endswith(f":{LEAK}") for name in leaky)
    assert any(name == f"middleware.user_id:{LEAK}" for name in leaky), "another request's user, downstream"
    clean, _ = served("contextvar_conditional", CLEAN)
    failures, dropped = apart(clean)
    assert failures == set() and dropped, "the setting removes the leak, and hides the startup values"


@pytest.mark.parametrize("config", servers.PER_KIND, ids=lambda c: c.label)
def test_every_server_kind_shows_the_startup_values_by_default(config: servers.ServerConfig) -> None:
    """What a dropped startup value is judged against: each server's default keeps the app's import-time Context."""
    found, _ = served("contextvar_asgi", config)
    assert apart(found)[1] == set(), sorted(set(found))


def test_the_snapshot_keeps_the_startup_values_even_with_the_reset_setting() -> None:
    found, _ = served("contextvar_snapshot", CLEAN)
    assert found == [], sorted(set(found))


def test_every_label_builds_a_loopback_command_of_its_kind() -> None:
    for config in servers.ALL:
        command = config.command("apps.baseline:app", HOST, 8123)
        assert command[1:3] == ["-m", config.kind] and HOST in " ".join(command)
        assert config.reset_twin is None or servers.get(config.reset_twin).reset_setting is not None
    with pytest.raises(KeyError, match="unknown server label"):
        servers.get("apache")
