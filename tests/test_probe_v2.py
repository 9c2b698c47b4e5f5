"""`ctxbench probe`, second version: exit codes through make, whole error messages, statuses, progress, fix hints."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest

from ctxbench.probing import analysis, driver, fixes, sentinel, session
from ctxbench.probing.driver import Target
from scripts.common import lock
from scripts.load import servers

ROOT = Path(__file__).resolve().parents[1]
PROBE_APPS = ROOT / "tests" / "probe_apps"
LEAKING = "uvloop-httptools"  # uvicorn's default: pipelined requests start in the previous request's context
REQUESTS = "16"  # per row: the fewest that still show the pipelined leak on every run here


def run_probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "scripts.cli", "probe", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280, check=False, env=env)


def test_make_probe_prints_the_probe_code_and_marks_non_2xx_rows(tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    args = f"--app-dir {PROBE_APPS} --server {LEAKING} --requests {REQUESTS} --post-path / --json {out}"
    args += " --identity-header X-Tenant-ID"  # the set-only app sets its ContextVar only when a request names one
    done = subprocess.run(
        ["make", "--no-print-directory", "probe", "APP=set_only_app:app", f"ARGS={args}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    # make can only exit 2 on failure: the probe's own code is on stderr, and in the JSON
    assert done.returncode == 2, done.stdout + done.stderr
    assert "make probe: ctxbench probe exited 1" in done.stderr, done.stderr
    document = json.loads(out.read_text())
    assert document["exit_code"] == 1
    rows = {row["kind"]: row for row in document["servers"][0]["rows"]}
    # the GET-only route answered every POST 405: marked, and the row is no clean verdict
    assert rows["post"]["statuses"] == {"405": int(REQUESTS)}
    assert rows["post"]["verdict"] == analysis.INCONCLUSIVE and "not 2xx (405" in rows["post"]["inconclusive"]
    assert "NOT 2xx" in done.stdout and rows["pipelined"]["verdict"] == analysis.STALE
    # one progress line per row, and the fix hint names the user's uvicorn release
    assert sum(f"{LEAKING}: {kind} " in done.stderr for kind in ("concurrent", "pipelined", "post")) == 3
    version = servers.uvicorn_version(sys.executable)
    assert version and f"your uvicorn ({version}) has --reset-contextvars" in done.stdout


def test_a_validation_error_at_import_names_the_field() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    done = run_probe("settings_app:app", "--app-dir", str(PROBE_APPS), env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("ctxbench probe: error:")] == [
        "ctxbench probe: error: cannot import 'settings_app': ValidationError: 1 validation error for Settings"
    ], done.stderr
    assert "database_url" in done.stderr and "Field required" in done.stderr
    assert len(done.stderr.splitlines()) <= 12  # a few lines, bounded

    shown = run_probe("settings_app:app", "--app-dir", str(PROBE_APPS), "--traceback", env=env)
    assert shown.returncode == 2 and "Traceback (most recent call last)" in shown.stderr
    assert "settings_app.py" in shown.stderr and "database_url" in shown.stderr


def test_a_startup_traceback_shows_its_exception_not_its_frames() -> None:
    try:
        raise ValueError("first line\nsecond line names the field")
    except ValueError:
        text = traceback.format_exc()
    assert sentinel._bounded(sentinel._exception_text(text)) == "ValueError: first line\nsecond line names the field"
    many = "\n".join(f"line {index}" for index in range(50))
    bounded = sentinel._bounded(many).splitlines()
    assert len(bounded) == sentinel.MAX_ERROR_LINES + 1 and f"{50 - sentinel.MAX_ERROR_LINES} more lines" in bounded[-1]


def test_an_inherited_pythonpath_is_kept_after_the_app_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/opt/shared-libs", "/opt/more"]))
    target = Target("main:app", sys.executable, Path("/srv/app"), Path("/tmp/x"))
    entries = target.environment(Path("/tmp/x/r"))["PYTHONPATH"].split(os.pathsep)
    assert entries == [str(target.sentinel_dir), "/srv/app", "/opt/shared-libs", "/opt/more"]
    monkeypatch.delenv("PYTHONPATH")
    assert target.environment(Path("/tmp/x/r"))["PYTHONPATH"].split(os.pathsep) == [
        str(target.sentinel_dir),
        "/srv/app",
    ]


def test_the_reset_worker_is_copied_beside_the_sentinel(tmp_path: Path) -> None:
    target = Target("main:app", sys.executable, tmp_path, tmp_path / "work")
    driver.install_sentinel(target)
    copied = target.sentinel_dir / f"{driver.WORKERS_MODULE}.py"
    assert "UvicornResetWorker" in copied.read_text()
    command = driver.served_command(servers.get("gunicorn-uvicorn-reset"), "127.0.0.1", 1, sys.executable)
    assert f"{driver.WORKERS_MODULE}.UvicornResetWorker" in command
    assert not any(part.startswith(driver.CTXBENCH_WORKERS) for part in command)
    needed = driver.required_modules(servers.get("gunicorn-uvicorn-reset"))
    assert driver.WORKERS_MODULE in needed and "uvicorn_worker" in needed


def test_the_fix_hint_says_whether_the_users_uvicorn_has_the_flag(tmp_path: Path) -> None:
    stale = [{"kind": "uvicorn", "stale_found": True}]
    hint = fixes.fix_hint(stale, sys.executable)
    assert hint and f"({servers.uvicorn_version(sys.executable)}) has --reset-contextvars" in hint
    assert fixes.fix_hint([{"kind": "hypercorn", "stale_found": True}], sys.executable) is None
    # an interpreter without uvicorn: its version and the flag's absence are said, not guessed
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=60)
    missing = fixes.fix_hint(stale, str(bare / "bin" / "python"))
    assert missing and "(not installed) has no --reset-contextvars" in missing
    assert f"uvicorn>={servers.RESET_FLAG_SINCE}" in missing  # the release to upgrade to is named


def test_a_wait_for_the_machine_lock_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.lock"
    monkeypatch.setattr(lock, "LOCK_PATH", path)
    monkeypatch.setattr(session, "LOCK_PATH", path)
    holder = open(path, "a")
    fcntl.flock(holder, fcntl.LOCK_EX)
    threading.Timer(0.3, lambda: (fcntl.flock(holder, fcntl.LOCK_UN), holder.close())).start()
    lines: list[str] = []
    started = time.monotonic()
    with session._machine(lines.append):
        waited = time.monotonic() - started
    assert lines[0].startswith("waiting for the machine lock") and str(path) in lines[0]
    assert waited >= 0.2
    lines.clear()
    with session._machine(lines.append):
        pass
    assert lines == []  # a free lock says nothing


@pytest.mark.parametrize(("form", "reaches"), [("uuid", True), ("token", False)])
def test_a_uuid_validating_middleware_takes_uuid_identities(form: str, reaches: bool, tmp_path: Path) -> None:
    """The app keeps the request id only when it is a UUID4: with tokens, nothing of another request is found."""
    out = tmp_path / "probe.json"
    done = run_probe(
        "uuid_request_id_app:app",
        *("--app-dir", str(PROBE_APPS), "--server", LEAKING, "--requests", REQUESTS, "--json", str(out)),
        *("--identity-header", "X-Request-ID", "--identity-format", form),
    )
    assert done.returncode == 1, done.stdout + done.stderr  # stale either way: the id is set on every request
    document = json.loads(out.read_text())
    assert document["identity_format"] == form
    found = [item for row in document["servers"][0]["rows"] for item in row["stale"] if item["name"] == "request_id"]
    assert found and (sum(item["data_leaks"] for item in found) > 0) is reaches


def _stale_items(document: dict, name: str) -> list[dict]:
    return [item for row in document["servers"][0]["rows"] for item in row["stale"] if item["name"] == name]


def test_a_value_cleared_and_rebound_is_replaced_and_passes_fail_on_kept(tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    done = run_probe(
        "rebind_app:app",
        *("--app-dir", str(PROBE_APPS), "--server", LEAKING, "--requests", REQUESTS, "--json", str(out)),
        *("--fail-on", "kept"),
    )
    document = json.loads(out.read_text())
    items = _stale_items(document, "log_context")
    assert items and sum(item["replaced"] for item in items) > 0, done.stdout
    assert all(item["kept"] == 0 and item["replaced"] == item["count"] for item in items)
    assert done.returncode == 0, done.stdout + done.stderr  # only replaced state, and the user accepts it
    assert analysis.exit_code(document["servers"]) == 1  # the default still fails on any stale state
    assert "replaced ×" in done.stdout and "the app set its own" in done.stdout


def test_a_setup_skipped_on_a_stale_flag_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    done = run_probe(
        "skip_on_flag_app:app",
        *("--app-dir", str(PROBE_APPS), "--server", LEAKING, "--requests", REQUESTS, "--json", str(out)),
        *("--fail-on", "kept"),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    document = json.loads(out.read_text())
    for name in ("middleware_applied", "request_scope"):
        items = _stale_items(document, name)
        assert items and all(item["kept"] == item["count"] and item["replaced"] == 0 for item in items), name
    assert "the whole request ran with another request's value" in done.stdout


def test_another_requests_identity_is_found_inside_a_partials_keywords(tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    done = run_probe(
        "partial_keeps_app:app",
        *("--app-dir", str(PROBE_APPS), "--server", LEAKING, "--requests", REQUESTS, "--json", str(out)),
        *("--identity-header", "X-Request-ID"),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    items = _stale_items(json.loads(out.read_text()), "current_scope")
    assert items and sum(item["data_leaks"] for item in items) > 0
    paths = [path for item in items for path in item["data_paths"]]
    assert paths and all(path.startswith("._event_processors[0].keywords['asgi_scope']['headers'][") for path in paths)
    assert "another request's identity found at ._event_processors[0].keywords" in done.stdout


def test_the_graph_search_reaches_slots_closures_methods_and_sets_without_running_user_code() -> None:
    pattern = sentinel.re.compile(sentinel.IDENTITY_PATTERNS["token"])

    class Loud:
        @property
        def secret(self) -> str:  # never called: a property is user code
            raise AssertionError("a property was run")

        def __repr__(self) -> str:
            raise AssertionError("a repr was run")

        def method(self) -> None:
            pass

    loud = Loud()
    loud.__dict__["kept"] = {frozenset({b"ctxp-00000000000000aa"})}
    token = "ctxp-00000000000000bb"

    def closure() -> str:
        return token

    found = sentinel.find_in_graph([loud.method, closure], pattern)
    assert found == {
        "ctxp-00000000000000aa": "[0].__self__.kept{...}{...}",
        "ctxp-00000000000000bb": "[1].<closure token>",
    }
    deep: list = [b"ctxp-00000000000000cc"]
    for _ in range(sentinel.WALK_MAX_DEPTH):
        deep = [deep]
    assert sentinel.find_in_graph(deep, pattern) == {}  # bounded: beyond the stated depth
