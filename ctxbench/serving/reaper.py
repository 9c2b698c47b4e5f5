"""Nothing outlives its orchestrator, even one killed by SIGKILL: a parent-death signal and a process-group reaper.

Servers and generators run in sessions of their own (Ctrl-C in the terminal reaches only the orchestrator, which
stops them by PID). A SIGKILLed orchestrator runs no clean-up, so two things stand in for it:

- each child asks the kernel for SIGKILL when its parent dies (PR_SET_PDEATHSIG, set between fork and exec). It
  fires when the *thread* that forked it ends: Managed processes are started from the main thread only.
- the kernel does not pass that on to grandchildren (gunicorn, hypercorn and granian workers, uvicorn --workers,
  locust --processes: measured, they all outlive a SIGKILLed parent). While any group runs, a small watchdog process
  holds the read end of a pipe only the orchestrator writes to; at end of file (the orchestrator is gone, however it
  ended) it kills every process group still registered, then exits. It lives only while groups are registered.

Run as a script (`python -I -S reaper.py`), it is that watchdog: it imports nothing of the project.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from typing import IO

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCHDOG_STOP_S = 5.0
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(parent: int) -> None:
    """In the child, between fork and exec: SIGKILL when the parent dies; at once if it already has (the race)."""
    if _LIBC is None:
        return
    if _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


class Reaper:
    """The orchestrator's side: registers process groups with the watchdog, started with the first, ended after the
    last (so a finished run leaves no watchdog behind either)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.groups: set[int] = set()

    def add(self, pgid: int) -> None:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal must not end it before the orchestrator's clean-up
            )
            for group in self.groups:  # a watchdog that was killed meanwhile: the new one takes them all over
                self._send(f"+{group}")
        self.groups.add(pgid)
        self._send(f"+{pgid}")

    def remove(self, pgid: int) -> None:
        """The group is stopped and verified gone: forget it (its number may be reused by an unrelated group)."""
        self.groups.discard(pgid)
        self._send(f"-{pgid}")
        if not self.groups and self.process is not None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()  # end of file: nothing registered, it exits
            try:
                self.process.wait(timeout=WATCHDOG_STOP_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def _send(self, line: str) -> None:
        if self.process is None or self.process.stdin is None:
            return
        with contextlib.suppress(OSError):  # a watchdog killed by someone: the next add starts another
            self.process.stdin.write(f"{line}\n".encode())
            self.process.stdin.flush()


REAPER = Reaper()  # one per orchestrator process


def watch(lines: IO[bytes]) -> list[int]:
    """The watchdog: `+PGID` registers a group, `-PGID` forgets it; at end of file, SIGKILL what is left."""
    groups: set[int] = set()
    for line in lines:
        with contextlib.suppress(ValueError):
            text = line.decode().strip()
            if text.startswith("+"):
                groups.add(int(text[1:]))
            elif text.startswith("-"):
                groups.discard(int(text[1:]))
    for pgid in sorted(groups):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    return sorted(groups)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    watch(sys.stdin.buffer)
