"""`ctxbench probe --front`: the app probed behind the reverse proxy it is deployed behind, another client's data apart.

Each client is a keep-alive connection of its own with its own identity values; the proxy mixes them over its upstream
connections, as in production. The leak case (uvicorn asyncio+h11, whose resumed reader hands a request's context to
the next one on the upstream connection) must be caught with data another client sent; its `--reset-contextvars` twin is
the negative control, judged clean only because the proxy was seen reusing its upstream connections.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ctxbench.probing import analysis
from scripts import cli
from scripts.load import fronts

ROOT = Path(__file__).resolve().parents[1]
LEAKS_BEHIND_A_PROXY = "asyncio-h11"  # results/load/PROXY.md: another client's data behind every front
REQUESTS = "64"  # per row, over FRONT_CLIENTS clients


def probe_behind(front: str, server: str, out: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "scripts.cli", "probe", "apps.contextvar_asgi:app", "--app-dir", str(ROOT)]
    command += ["--server", server, "--front", front, "--requests", REQUESTS, "--identity-header", "X-User-ID"]
    command += ["--path", "/items/1", "--post-path", "/items/2", "--json", str(out)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280, check=False)


@pytest.mark.parametrize("front", ["nginx", "haproxy"])
def test_another_clients_data_is_found_behind_the_proxy_and_the_reset_twin_is_clean(front: str, tmp_path: Path) -> None:
    if fronts.get(front).missing():
        pytest.skip(fronts.get(front).missing() or "")
    out = tmp_path / "leak.json"
    done = probe_behind(front, LEAKS_BEHIND_A_PROXY, out)
    assert done.returncode == 1, done.stdout + done.stderr
    document = json.loads(out.read_text())
    assert document["front"] == front and document["servers"][0]["front"]["label"] == front
    rows = {row["kind"]: row for row in document["servers"][0]["rows"]}
    assert set(rows) == {"clients", "clients-post"}  # nothing pipelined through a proxy
    assert rows["clients-post"]["verdict"] == analysis.STALE
    assert rows["clients-post"]["other_client_leaks"] > 0, rows["clients-post"]
    assert f"{LEAKS_BEHIND_A_PROXY} via {front}" in done.stdout and "another client's" in done.stdout

    control = tmp_path / "control.json"
    done = probe_behind(front, f"{LEAKS_BEHIND_A_PROXY}-reset", control)
    assert done.returncode == 0, done.stdout + done.stderr
    for row in json.loads(control.read_text())["servers"][0]["rows"]:
        assert row["verdict"] == analysis.CLEAN and row["inconclusive"] is None
        # judged clean because the proxy was seen carrying several requests on one upstream connection
        assert max(row["requests_per_upstream_connection"]) >= analysis.MIN_ANSWERED_PER_CONNECTION


def test_a_front_that_never_reuses_its_upstream_connections_gives_no_verdict() -> None:
    row = {
        "sent": 64,
        "answered": 64,
        "errors": 0,
        "seen": 64,
        "statuses": {"200": 64},
        "answered_per_connection": [8] * 8,
        "behind_front": True,
        "requests_per_upstream_connection": [1] * 64,
    }
    reason = analysis.inconclusive_reason(row)
    assert reason and "reused none of its 64 upstream connections" in reason
    assert analysis.inconclusive_reason({**row, "requests_per_upstream_connection": [1] * 62 + [2]}) is None


def test_a_missing_proxy_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fronts, "SEARCH_PATH", str(tmp_path))  # a machine without nginx
    code = cli.main(["probe", "apps.contextvar_asgi:app", "--app-dir", str(ROOT), "--front", "nginx"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert fronts.INSTALL in err[0] and "Traceback" not in err[0]
