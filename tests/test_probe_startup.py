"""The setting check: before a user flips --reset-contextvars, the probe says which startup values it would hide."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ctxbench import StartupValue, probe
from ctxbench.probing import sentinel, startup

ROOT = Path(__file__).resolve().parents[1]
PROBE_APPS = ROOT / "tests" / "probe_apps"
LEAKING, TWIN = "uvloop-httptools", "uvloop-httptools-reset"  # uvicorn's default, and with --reset-contextvars
REQUESTS = 16  # per row: the fewest that still show the pipelined leak on every run here
STARTUP = {  # what tests/probe_apps/startup_state_app.py sets at import: name -> (module, type)
    "region": ("startup_state_app", "str"),
    "decimal context": ("decimal", "decimal.Context"),
    "structlog's service": ("structlog.contextvars", "str"),
}
SECTION = f"{startup.HEADING} (checked on {TWIN}): "
TWIN_STARTING = f"{TWIN}: starting"


def run_probe(app: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ctxbench", "probe", app, "--app-dir", str(PROBE_APPS), "--server", LEAKING]
    command += ["--requests", str(REQUESTS), "--identity-header", "X-Tenant-ID", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280, check=False)


def test_the_startup_values_a_reset_would_hide_are_measured_on_its_twin(tmp_path: Path) -> None:
    lines: list[str] = []
    out = tmp_path / "probe.json"
    result = probe(
        "startup_state_app:app",
        app_dir=PROBE_APPS,
        servers=[LEAKING],
        identity_headers=["X-Tenant-ID"],
        requests=REQUESTS,
        json_path=out,
        progress=lines.append,
    )
    assert result.exit_code == 1 and result.verdict == "stale", result.report()
    assert any(line.startswith(TWIN_STARTING) for line in lines), lines  # measured on the twin, not guessed
    hidden = {value.name: value for value in result.hidden_by_setting}
    assert set(hidden) == set(STARTUP), result.report()
    for name, (module, kind) in STARTUP.items():
        value = hidden[name]
        assert isinstance(value, StartupValue) and (value.module, value.type) == (module, kind)
        assert (value.server, value.checked_on, value.setting) == (LEAKING, TWIN, "--reset-contextvars")
        assert value.change == startup.ABSENT
    assert {value.var for value in hidden.values()} == {"region", "decimal_context", "structlog_service"}
    report = result.report()
    assert SECTION + "decimal context (decimal, decimal.Context), region (startup_state_app, str)" in report
    assert result.fix and result.fix in report
    assert "would hide 3 values your app sets before its first request" in result.fix
    assert "SnapshotContextMiddleware" in result.fix and "(README: the fix to copy)" in result.fix
    # the same in the JSON document
    check = json.loads(out.read_text())["setting_checks"]
    assert [(entry["server"], entry["twin"], entry["checked"]) for entry in check] == [(LEAKING, TWIN, True)]
    assert {item["name"] for item in check[0]["hidden"]} == set(STARTUP)


def test_no_setting_check_starts_no_twin_and_keeps_the_plain_fix_line() -> None:
    done = run_probe("startup_state_app:app", "--no-setting-check")
    assert done.returncode == 1, done.stdout + done.stderr
    assert TWIN_STARTING not in done.stderr and startup.HEADING not in done.stdout
    assert "SnapshotContextMiddleware" not in done.stdout
    assert "has --reset-contextvars: pass it to uvicorn" in done.stdout


def test_an_app_with_no_startup_values_gets_the_plain_fix_line_and_no_list() -> None:
    done = run_probe("set_only_app:app")
    assert done.returncode == 1, done.stdout + done.stderr
    assert startup.HEADING not in done.stdout and "SnapshotContextMiddleware" not in done.stdout
    assert TWIN_STARTING not in done.stderr  # nothing to hide: the twin is not started
    assert "has --reset-contextvars: pass it to uvicorn" in done.stdout


def test_the_app_wrapped_in_the_snapshot_middleware_passes() -> None:
    done = run_probe("startup_snapshot_app:app")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no stale state on: uvloop-httptools" in done.stdout
    assert "fix:" not in done.stdout


def test_a_startup_value_is_hidden_when_absent_or_different_and_the_sentinels_own_are_left_out() -> None:
    default = [
        {"name": "region", "module": "svc", "type": "str", "hash": "aaa"},
        {"name": "flags", "module": "svc", "type": "dict", "hash": "bbb"},
        {"name": "same", "module": "svc", "type": "str", "hash": "ccc"},
        {"name": "structlog_user", "module": "structlog.contextvars", "type": "str", "hash": "ddd"},
        {"name": sentinel.MARKER.name, "module": None, "type": "object", "hash": "eee"},
    ]
    twin = [
        {"name": "flags", "module": "svc", "type": "dict", "hash": "fff"},
        {"name": "same", "module": "svc", "type": "str", "hash": "ccc"},
    ]
    found = {item["name"]: item["change"] for item in startup.hidden(default, twin)}
    assert found == {"region": "absent", "flags": "different", "structlog's user": "absent"}
    assert startup.readable("decimal_context", None) == ("decimal context", "decimal")
    assert startup.readable("structlog_x", "myapp") == ("structlog_x", "myapp")  # only structlog's own are renamed


def test_the_baseline_hash_ignores_memory_addresses_only() -> None:
    class Config:
        pass

    first, second = Config(), Config()
    assert sentinel._baseline_hash(first) == sentinel._baseline_hash(second)
    assert sentinel._baseline_hash("eu-west-1") != sentinel._baseline_hash("us-east-1")
