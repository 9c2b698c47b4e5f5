"""Holding up under faults: Ctrl-C in a sweep or a soak, a server that crashes, a generator that dies, a result file
being read while it is written. Nothing is ever left running, and no reader ever sees half a file."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from scripts.common import results
from scripts.common.environment import ROOT
from scripts.common.lock import exclusive_run
from scripts.load import bounded_run, servers

LOCK_WAIT_S = 240.0  # a run may first wait for the machine lock (within pytest-timeout)
GENERATOR_UP_S = 6.0  # locust starts in a second or two (more on a busy machine): then it has sent requests
RUN_S = 30.0  # long enough to be interrupted or broken mid-run; the faults end it far sooner


def alive(proc: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    return False


def watch_until(
    parent: psutil.Process, seen: dict[int, psutil.Process], wanted: Callable[[str], bool], age_s: float = 1.5
) -> None:
    """Remember every descendant of `parent` until one whose command line matches has been up for `age_s`."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while time.monotonic() < deadline:
        if not alive(parent):  # it ended before its generator ran long enough: say so now, not after the deadline
            pytest.fail(f"the run ended (exit code {parent.poll()}) before its generator had run {age_s}s")
        with contextlib.suppress(psutil.Error):
            seen.update({child.pid: child for child in parent.children(recursive=True)})
        for proc in list(seen.values()):
            with contextlib.suppress(psutil.Error):
                if wanted(" ".join(proc.cmdline())) and time.time() - proc.create_time() > age_s:
                    return
        time.sleep(0.05)
    pytest.fail("the run never started")


def is_locust(command: str) -> bool:
    return "-m locust" in command


def interrupted(
    command: list[str], age_s: float = 1.5, how: int = signal.SIGINT
) -> tuple[int | None, dict[int, psutil.Process], list[int]]:
    """Start an orchestrator, Ctrl-C (or `how`) it once its generator runs: its exit code, every process it started
    and those still alive after it exited. The test stops those itself (by PID) after looking, so a failure leaves
    nothing. Its output must hold no traceback: an interrupted command says so in a line."""
    orchestrator = psutil.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: dict[int, psutil.Process] = {}
    code: int | None = None
    try:
        watch_until(orchestrator, seen, is_locust, age_s)
        orchestrator.send_signal(how)
        output, _ = orchestrator.communicate(timeout=60)
        code = orchestrator.returncode
        assert "Traceback" not in output, output
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
        left = [proc for proc in seen.values() if alive(proc)]
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()
    return code, seen, [proc.pid for proc in left]


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_in_a_sweep_leaves_no_process_and_no_traceback(how: int, tmp_path: Path) -> None:
    """A fixed-duration mode (latency: sweep.LATENCY_DURATION_S per run), not the quick hunt: a hunt of one variant
    on one server settles in about 1.5 s, so on a fast minute it ended before the signal and the test failed by
    chance (3 of 5 CI runs). Its files go to tmp_path: a test never writes the committed results."""
    command = [sys.executable, "-m", "scripts.cli", "sweep", "--mode", "latency", "--variant", "baseline"]
    command += ["--server", servers.DEFAULT.label, "--results-dir", str(tmp_path)]
    code, seen, left = interrupted(command, how=how)
    assert code == 130 and seen
    assert not left


def test_ctrl_c_in_a_soak_leaves_no_process_and_writes_what_it_has(tmp_path: Path) -> None:
    """What it has goes next to the previous complete soak (`<out>.incomplete/`), which stays as it was."""
    out, incomplete = tmp_path / "soak", tmp_path / "soak.incomplete"
    out.mkdir()
    (out / "summary.json").write_text('{"complete": true}')
    command = [sys.executable, "-m", "scripts.cli", "soak", "--requests", "10000000", "--segment", str(RUN_S)]
    command += ["--pair", "contextvar_snapshot:uvloop-httptools", "--out", str(out)]
    code, seen, left = interrupted(command, age_s=GENERATOR_UP_S)
    assert code == 130 and seen
    assert not left
    assert [path.name for path in out.iterdir()] == ["summary.json"]
    assert (out / "summary.json").read_text() == '{"complete": true}'
    summary = results.read_json(incomplete / "summary.json")
    assert summary["complete"] is False and summary["interrupted"] is True and summary["passed"] is False
    pair = results.read_json(incomplete / "contextvar_snapshot--uvloop-httptools.json")
    assert pair["segments"] and pair["segments"][-1].get("interrupted") is True and pair["requests"] > 0


def kill_child_when_running(matches: Callable[[str], bool], killed: list[int]) -> threading.Thread:
    """In the background: find this process's child whose command matches, let it run a moment, SIGKILL it by PID."""

    def hunt() -> None:
        seen: dict[int, psutil.Process] = {}
        watch_until(psutil.Process(), seen, matches)
        for proc in seen.values():
            with contextlib.suppress(psutil.Error):
                if matches(" ".join(proc.cmdline())) and alive(proc):
                    proc.kill()
                    killed.append(proc.pid)
                    return

    thread = threading.Thread(target=hunt, daemon=True)
    thread.start()
    return thread


def run_with_a_fault(matches: Callable[[str], bool]) -> tuple[BaseException | None, dict]:
    spec = bounded_run.RunSpec("baseline", "get", 4, RUN_S, 0.5, servers.DEFAULT, tag="test")
    killed: list[int] = []
    before = {proc.pid for proc in psutil.Process().children(recursive=True)}
    with exclusive_run():
        started = time.monotonic()
        thread = kill_child_when_running(matches, killed)
        error: BaseException | None = None
        try:
            bounded_run.execute(spec)
        except RuntimeError as raised:
            error = raised
        thread.join(timeout=5)
    assert killed, "the fault was never injected"
    assert time.monotonic() - started < RUN_S, "the run went on to its end instead of stopping at the fault"
    left = [proc for proc in psutil.Process().children(recursive=True) if proc.pid not in before and alive(proc)]
    return error, {"left": left}


def test_a_server_that_crashes_mid_run_fails_the_run_cleanly() -> None:
    error, found = run_with_a_fault(lambda command: "uvicorn" in command and "apps.baseline" in command)
    assert error is not None and "server exited" in str(error)
    assert found["left"] == []


def test_a_generator_that_dies_mid_run_fails_the_run_and_stops_the_server() -> None:
    error, found = run_with_a_fault(is_locust)
    assert error is not None
    assert found["left"] == []


def test_a_reader_never_sees_half_a_result_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "result.json"
    big = {"values": list(range(200_000))}
    results.write_json(path, {"values": []})
    stop, seen, torn = threading.Event(), [0], []

    def reader() -> None:
        while not stop.is_set():
            try:
                json.loads(path.read_text())
                seen[0] += 1
            except ValueError as error:
                torn.append(str(error))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for index in range(20):
            results.write_json(path, big if index % 2 else {"values": []})
    finally:
        stop.set()
        thread.join()
    assert seen[0] > 0 and torn == []

    # a write that fails half-way leaves the previous file whole and no temporary file behind
    monkeypatch.setattr(results.os, "replace", lambda *_: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        results.write_json(path, {"new": True})
    assert json.loads(path.read_text()) == big and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
