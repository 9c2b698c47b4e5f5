"""An orchestrator killed with SIGKILL (no clean-up of its own can run) leaves no server, worker or generator behind.

The end-to-end test starts a load run (it takes the machine lock itself, so it runs alone among load runs) on
gunicorn, whose worker is a grandchild, with two locust processes, whose workers are grandchildren too.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from scripts.common.environment import ROOT
from scripts.load import process, reaper, servers

LOCK_WAIT_S = 240.0  # the run may first wait for the machine lock
GONE_S = 10.0  # the parent-death signal and the watchdog act at once; this is slack for a busy machine


def alive(proc: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    return False


def kill_left(procs: list[psutil.Process]) -> list[int]:
    """Whatever is still alive, killed by PID (so a failing test leaves nothing for the next); returns those PIDs."""
    left = [proc for proc in procs if alive(proc)]
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return [proc.pid for proc in left]


def count(procs: dict[int, psutil.Process], needle: str) -> int:
    found = 0
    for proc in procs.values():
        with contextlib.suppress(psutil.Error):
            found += needle in " ".join(proc.cmdline()) and alive(proc)
    return found


def test_a_sigkilled_orchestrator_leaves_nothing_running() -> None:
    command = [sys.executable, "-m", "scripts.cli", "load", "--variant", "baseline", "--duration", "60"]
    command += ["--server", servers.GUNICORN.label, "--processes", "2"]
    orchestrator = psutil.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        # up: the gunicorn master and its worker, the locust master and its two worker processes
        while time.monotonic() < deadline and not (count(seen, "gunicorn") >= 2 and count(seen, "-m locust") >= 3):
            with contextlib.suppress(psutil.Error):
                seen.update({child.pid: child for child in orchestrator.children(recursive=True)})
            assert orchestrator.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        assert count(seen, "gunicorn") >= 2 and count(seen, "-m locust") >= 3, "the run never started"
        grandchildren = [proc for proc in seen.values() if proc.ppid() != orchestrator.pid]
        assert grandchildren, "no grandchild to prove the process-group reaper on"
        orchestrator.send_signal(signal.SIGKILL)
        orchestrator.wait(timeout=10)
        psutil.wait_procs(list(seen.values()), timeout=GONE_S)
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
        left = kill_left(list(seen.values()))
    assert not left, f"left running after the orchestrator was SIGKILLed: {left}"


def test_the_watchdog_kills_the_groups_still_registered_at_end_of_file() -> None:
    started = [
        psutil.Popen(["sleep", "60"], start_new_session=True),
        psutil.Popen(["sleep", "60"], start_new_session=True),
    ]
    kept, killed = started
    try:
        lines = [f"+{kept.pid}\n".encode(), f"+{killed.pid}\n".encode(), f"-{kept.pid}\n".encode(), b"junk\n"]
        assert reaper.watch(iter(lines)) == [killed.pid]  # type: ignore[arg-type]
        assert killed.wait(timeout=5) == -signal.SIGKILL
        assert kept.poll() is None  # forgotten: a stopped group's number may belong to someone else by now
    finally:
        kill_left(started)
        for proc in started:
            proc.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_dies_with_its_parent_even_when_the_parent_is_sigkilled() -> None:
    """The parent-death signal alone, on a parent that runs no clean-up: a middle process starts `sleep` with it."""
    script = (
        "import os, subprocess, sys, time; from scripts.load import reaper; parent = os.getpid(); "
        "child = subprocess.Popen(['sleep', '60'], start_new_session=True, "
        "preexec_fn=lambda: reaper.die_with_parent(parent)); print(child.pid, flush=True); time.sleep(60)"
    )
    middle = psutil.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child: psutil.Process | None = None
    try:
        assert middle.stdout is not None
        child = psutil.Process(int(middle.stdout.readline()))
        assert alive(child)
        middle.send_signal(signal.SIGKILL)
        middle.wait(timeout=10)
        psutil.wait_procs([child], timeout=GONE_S)
        assert not alive(child)
    finally:
        if middle.poll() is None:
            middle.kill()
        if child is not None:
            kill_left([child])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_without_the_parent_death_signal_the_child_would_be_left() -> None:
    """The negative control of the test above: the same middle process without it leaves `sleep` running."""
    script = (
        "import subprocess, time; child = subprocess.Popen(['sleep', '60'], start_new_session=True); "
        "print(child.pid, flush=True); time.sleep(60)"
    )
    middle = psutil.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child: psutil.Process | None = None
    try:
        assert middle.stdout is not None
        child = psutil.Process(int(middle.stdout.readline()))
        middle.send_signal(signal.SIGKILL)
        middle.wait(timeout=10)
        time.sleep(1.0)
        assert alive(child)
    finally:
        if middle.poll() is None:
            middle.kill()
        if child is not None:
            kill_left([child])


def test_a_started_process_takes_sigint_even_when_ctxbench_ignores_it(tmp_path: Path) -> None:
    """Run from a background job of a non-interactive shell (CI, nohup), ctxbench has SIGINT ignored, and an ignored
    signal stays ignored across exec: HAProxy then ignored stop()'s SIGINT until the SIGKILL 10 s later."""
    report = "import signal; print(signal.getsignal(signal.SIGINT), flush=True)"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        child = process.Managed([sys.executable, "-c", report], (0,), tmp_path / "child.log")
        child.process.wait(timeout=30)
        child.stop()
        # the control: the same child started plainly inherits the ignored SIGINT
        plain = subprocess.run([sys.executable, "-c", report], capture_output=True, text=True, timeout=30, check=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert "default_int_handler" in (tmp_path / "child.log").read_text()
    assert plain.stdout.strip() in ("1", "Handlers.SIG_IGN")  # SIG_IGN, printed as its number
