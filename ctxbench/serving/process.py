"""Start processes pinned to cores, stop them by PID (also on Ctrl-C), and prove that none of them is left."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from ctxbench.serving import reaper
from ctxbench.serving.fronts import Front
from ctxbench.serving.settings import HEALTH_POLL_S, HEALTH_TIMEOUT_S, HOST, STOP_TIMEOUT_S

if TYPE_CHECKING:
    from ctxbench.serving.tls import Certificate

GONE_POLL_S = 0.01  # between looks at processes being stopped


class LeftBehind(RuntimeError):
    """A process this run started is still alive after it was stopped."""


class Managed:
    """A process started by this run, with every descendant it was ever seen to have."""

    def __init__(self, command: list[str], cpus: tuple[int, ...], log_path: Path, cwd: Path | None = None) -> None:
        """`cwd`: where the process starts (None: here); the suite's variants import from the clone's root."""
        self.command = command
        self.log_path = log_path
        self.log = open(log_path, "wb")  # closed in stop()
        parent = os.getpid()

        def in_child() -> None:
            reaper.die_with_parent(
                parent
            )  # a SIGKILLed orchestrator stops nothing itself (see ctxbench.serving.reaper)
            os.sched_setaffinity(0, cpus)
            # An ignored signal stays ignored across exec: run from a background job of a non-interactive shell (CI,
            # nohup, `make sweep &`), ctxbench has SIGINT ignored, and so would its servers and proxies. HAProxy then
            # ignored stop()'s SIGINT until the SIGKILL 10 s later, on every run behind it.
            signal.signal(signal.SIGINT, signal.SIG_DFL)

        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal reaches only us; we stop it ourselves, by PID
            preexec_fn=in_child,
        )
        reaper.REAPER.add(self.process.pid)  # its own group (start_new_session): the group's id is its PID
        self.seen: dict[int, psutil.Process] = {self.process.pid: psutil.Process(self.process.pid)}
        self.cpu_by_pid: dict[int, float] = {}  # last reading per PID: a process that exits keeps its CPU time
        self.stopped: list[int] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def processes(self) -> list[psutil.Process]:
        """The process and its current descendants (remembered, so that the final check covers them all)."""
        with contextlib.suppress(psutil.Error):
            for child in self.seen[self.pid].children(recursive=True):
                self.seen.setdefault(child.pid, child)
        return [proc for proc in self.seen.values() if proc.is_running()]

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process and its descendants (monotonic, also after they exit)."""
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                self.cpu_by_pid[proc.pid] = times.user + times.system
        return sum(self.cpu_by_pid.values())

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, graceful: bool = True) -> list[int]:
        """SIGINT, then SIGKILL to every remembered PID; returns the PIDs that were seen (all verified gone).

        `graceful=False` skips the SIGINT: for a server whose run is over and whose shutdown nothing reads (the leak
        hunt), a graceful shutdown costs up to 1.7 s per run (hypercorn, gunicorn) and tells nothing.
        """
        if self.stopped is not None:
            return self.stopped
        self.processes()
        if graceful and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        for proc in self.seen.values():  # each by its own PID, never by name
            with contextlib.suppress(psutil.Error):
                if proc.is_running():
                    proc.kill()
        if self.process.poll() is None:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        # Its own session and process group (start_new_session): a worker forked after the last look is in it too.
        group = [*self.seen.values(), *in_group(self.pid)]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        alive = wait_gone(group, STOP_TIMEOUT_S)
        self.log.close()
        left = [proc.pid for proc in alive]
        left += [proc.pid for proc in in_group(self.pid) if proc.pid not in left]
        if left:
            raise LeftBehind(f"still running after stop: {left} (from {' '.join(self.command)})")
        reaper.REAPER.remove(self.pid)
        self.stopped = sorted(self.seen)
        return self.stopped


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Those still running (zombies count as gone) after at most `timeout_s`.

    Not psutil.wait_procs: it waits until a killed grandchild's zombie is reaped by init, which took up to 1.6 s
    per stop here (gunicorn's and hypercorn's workers), though a zombie runs nothing.
    """
    deadline = time.monotonic() + timeout_s
    while (alive := [proc for proc in procs if _running(proc)]) and time.monotonic() < deadline:
        time.sleep(GONE_POLL_S)
    return alive


def in_group(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of a process group."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class NotServing(RuntimeError):
    """The server exited (`exit_code` set) or did not answer in time (`exit_code` None)."""

    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def wait_answering(
    server: Managed, url: str, timeout_s: float = HEALTH_TIMEOUT_S, context: ssl.SSLContext | None = None
) -> None:
    """Poll `url` on fresh connections until it answers 200, or raise NotServing (`context`: for https)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise NotServing(f"server exited with {server.process.returncode}", server.process.returncode)
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(HEALTH_POLL_S)
    raise NotServing(f"no answer on {url} within {timeout_s}s", None)


@dataclass
class Fronted:
    """What the clients talk to: the front's port (the server's own when direct), its process and config text."""

    front: Front
    port: int
    process: Managed | None = None
    config: str | None = None
    certificate: Certificate | None = None  # a TLS front's, generated for the run

    @property
    def url(self) -> str:
        return f"{'https' if self.certificate else 'http'}://{HOST}:{self.port}"

    def cpu_seconds(self) -> float:
        return self.process.cpu_seconds() if self.process is not None else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            **self.front.as_dict(),
            "version": self.front.version(),
            "command": self.process.command if self.process is not None else None,
            "config": self.config,
        }


@contextlib.contextmanager
def fronting(
    front: Front,
    upstream_port: int,
    cpus: tuple[int, ...],
    health_path: str,
    port: int | None = None,
) -> Iterator[Fronted]:
    """The front started in a temporary prefix in front of a serving server, answering `health_path` through it on
    entry, stopped by PID and process group on exit whatever happened. Direct: nothing is started.

    `health_path`: what answers 200 through the front once both are up (the suite's /healthz, the sentinel's own).

    `port`: the front's, chosen by the caller (to start a client before the front is up); None: a free one."""
    if front.is_direct:
        yield Fronted(front, upstream_port)
        return
    with tempfile.TemporaryDirectory(prefix=f"ctxbench-{front.label}-") as tmp:
        prefix = Path(tmp)
        prefix.chmod(0o755)  # nginx's workers drop root for nobody and must reach their body buffers in the prefix
        port = free_port() if port is None else port
        conf = prefix / f"{front.kind}.conf"
        config = front.render(prefix, port, upstream_port, HOST)
        conf.write_text(config)
        certificate, context = None, None
        if front.tls:  # cryptography only for a TLS front (the suite's HTTP/2 runs), never for the probe's
            from ctxbench.serving.tls import HTTP1, generate

            certificate = generate(prefix, HOST)
            context = certificate.client_context(HTTP1)
        process = Managed(front.command(prefix, conf), cpus, prefix / "front.log")
        fronted = Fronted(front, port, process, config, certificate)
        try:
            try:
                wait_answering(process, f"{fronted.url}{health_path}", context=context)
            except NotServing as error:
                raise RuntimeError(f"front {front.label}: {error}:\n{process.log_tail()}") from None
            process.processes()  # remember nginx's worker now that it is up
            yield fronted
        finally:
            process.stop()
