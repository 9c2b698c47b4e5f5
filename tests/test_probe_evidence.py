"""The probe judges its evidence (issue 26, cases 1-5): no verdict rests on requests not answered, not seen, too few
per connection, or on the sentinel's own failure; stale values read before a fresh Context and shared objects count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ctxbench.probing import analysis
from ctxbench.probing.driver import ServerResult
from ctxbench.probing.session import MIN_REQUESTS
from ctxbench.probing.session import probe_document as probe
from ctxbench.probing.traffic import KEEPALIVE_CONNECTIONS, Row, RowResult
from scripts.load import servers

ROOT = Path(__file__).resolve().parents[1]
PROBE_APPS = ROOT / "tests" / "probe_apps"
LEAKING = servers.get("uvloop-httptools")  # uvicorn's default: pipelined requests start in the previous one's context
REQUESTS = 60


def document(*rows: RowResult, seen: int | None = None, stale: dict | None = None) -> dict:
    """A server's document from rows as the traffic left them and one sentinel report."""
    phases = [(f"row{index}", row) for index, row in enumerate(rows)]
    requests = {phase: (row.answered if seen is None else seen) for phase, row in phases}
    report = {"baseline": [], "requests": requests, "stale": stale or {}, "leaking_requests": {}, "isolated": {}}
    return analysis.server_document(ServerResult(LEAKING, ["uvicorn"], phases, [report]))


def row_result(sent: int, answered: int, per_connection: list[int], error: str | None = None) -> RowResult:
    result = RowResult(Row("concurrent", "/"), sent=sent, answered=answered, errors=sent - answered)
    result.statuses = {200: answered} if answered else {}
    result.first_error, result.per_connection = error, per_connection
    return result


def test_case_1_a_row_whose_requests_all_failed_is_inconclusive_not_clean() -> None:
    failed = document(row_result(200, 0, [0] * KEEPALIVE_CONNECTIONS, "ConnectionResetError: reset"))
    row = failed["rows"][0]
    assert row["verdict"] == analysis.INCONCLUSIVE and "200 of 200 requests failed" in row["inconclusive"]
    assert not failed["stale_found"] and failed["inconclusive"]
    assert analysis.exit_code([failed]) == analysis.EXIT_INCONCLUSIVE == 3
    line = analysis.verdict([failed])
    assert "INCONCLUSIVE" in line and "uvloop-httptools" in line and "no stale state" not in line
    assert "INCONCLUSIVE" in analysis.table([failed])
    # answered but never seen by the sentinel: no verdict either
    unseen = document(row_result(200, 200, [50] * KEEPALIVE_CONNECTIONS), seen=0)
    assert "the sentinel saw 0 of 200" in unseen["rows"][0]["inconclusive"]
    # the control: every request answered and seen, every connection carried many -> clean, exit 0
    clean = document(row_result(200, 200, [50] * KEEPALIVE_CONNECTIONS))
    assert clean["rows"][0]["verdict"] == analysis.CLEAN and analysis.exit_code([clean]) == 0
    # a leak seen before the failures still counts: stale outranks inconclusive
    finding = {"name": "user", "module": "m", "type": "str", "count": 3, "data_leaks": 0, "hashes": {"ab": 3}}
    stale = document(row_result(200, 20, [5] * KEEPALIVE_CONNECTIONS, "timeout"), stale={"row0": {"user@1": finding}})
    assert stale["rows"][0]["verdict"] == analysis.STALE and analysis.exit_code([stale, failed]) == 1


def test_case_5_too_few_requests_per_connection_is_inconclusive_or_refused() -> None:
    thin = document(row_result(4, 4, [1, 1, 1, 1]))
    reason = thin["rows"][0]["inconclusive"]
    assert reason and f"4 of 4 connections carried fewer than {analysis.MIN_ANSWERED_PER_CONNECTION}" in reason
    assert analysis.exit_code([thin]) == analysis.EXIT_INCONCLUSIVE
    one_short = document(row_result(200, 200, [100, 99, 1, 0]))
    assert "2 of 4 connections" in one_short["rows"][0]["inconclusive"]
    command = [sys.executable, "-m", "scripts.cli", "probe", "plain_asgi:app", "--app-dir", str(PROBE_APPS)]
    done = subprocess.run([*command, "--requests", "3"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and f"from {MIN_REQUESTS} to" in done.stderr


def run(app: str) -> dict:
    return probe(
        app, [LEAKING], python=sys.executable, app_dir=PROBE_APPS, paths=["/"], identity=("X-User-ID",),
        requests=REQUESTS,
    )  # fmt: skip


def findings(result: dict, name: str) -> list[dict]:
    return [item for row in result["servers"][0]["rows"] for item in row["stale"] if item["name"] == name]


def test_case_2_the_sentinels_own_bookkeeping_never_fails_a_request() -> None:
    # a module global whose __class__ raises (a request proxy) made describing the finding raise: the request failed
    # and the finding was dropped, so the probe said clean
    result = run("proxy_global_app:app")
    rows = result["servers"][0]["rows"]
    assert all(row["answered"] == row["sent"] == REQUESTS and row["errors"] == 0 for row in rows)
    assert all(row["statuses"] == {"200": REQUESTS} and row["sentinel_errors"] == 0 for row in rows)
    user = findings(result, "proxied_user")
    assert user and user[0]["data_leaks"] > 0
    assert result["stale_found"] and result["exit_code"] == 1


def test_case_3_stale_values_read_before_the_apps_fresh_context_are_reported() -> None:
    result = run("outer_log_app:app")
    request_id = findings(result, "outer_request_id")
    assert request_id and request_id[0]["read_before_fresh"] > 0 and request_id[0]["data_leaks"] > 0
    assert result["exit_code"] == 1
    assert "read before the app's fresh Context" in analysis.table(result["servers"])


def test_case_4_a_shared_mutable_baseline_object_is_searched_for_other_requests_values() -> None:
    result = run("shared_dict_app:app")
    shared = findings(result, "shared_state")
    assert shared and all(item["shared"] > 0 and item["data_leaks"] > 0 for item in shared)
    assert result["exit_code"] == 1


@pytest.mark.parametrize("app", ["plain_asgi:app"])
def test_the_clean_control_is_still_clean(app: str) -> None:
    result = run(app)
    assert not result["stale_found"] and not result["inconclusive"] and result["exit_code"] == 0
