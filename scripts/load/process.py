"""The suite's servers: a variant of apps/ served from the clone's root, healthy on entry, stopped by PID on exit.

Starting, stopping and proving nothing is left is ctxbench.serving.process (the installed probe uses it too); this
module adds what only the suite has: variants, their /healthz, and the clone's root as every process's directory.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from apps.harness.contract import HEALTH_PATH
from apps.harness.registry import Variant
from ctxbench.serving import process
from ctxbench.serving.fronts import Front
from ctxbench.serving.process import (  # noqa: F401 - the suite imports them from here
    Fronted,
    LeftBehind,
    NotServing,
    free_port,
    in_group,
    wait_answering,
    wait_gone,
)
from ctxbench.serving.servers import ServerConfig
from ctxbench.serving.settings import HOST
from scripts.common.environment import ROOT


class Managed(process.Managed):
    """A process started in the clone's root: `apps.<variant>:app` imports from there in any stack's interpreter."""

    def __init__(self, command: list[str], cpus: tuple[int, ...], log_path: Path, cwd: Path | None = ROOT) -> None:
        super().__init__(command, cpus, log_path, cwd)


def fronting(
    front: Front, upstream_port: int, cpus: tuple[int, ...], health_path: str = HEALTH_PATH, port: int | None = None
) -> contextlib.AbstractContextManager[Fronted]:
    """ctxbench.serving.process.fronting, answering the variants' /healthz through the front by default."""
    return process.fronting(front, upstream_port, cpus, health_path, port)


def server_command(variant: Variant, config: ServerConfig, port: int, python: str = sys.executable) -> list[str]:
    return config.command(f"{variant.module}:app", HOST, port, python=python)


def wait_healthy(server: Managed, port: int) -> None:
    try:
        wait_answering(server, f"http://{HOST}:{port}{HEALTH_PATH}")
    except NotServing as error:
        raise RuntimeError(f"{error}:\n{server.log_tail()}") from None


@contextlib.contextmanager
def serve(
    variant: Variant,
    config: ServerConfig,
    port: int,
    cpus: tuple[int, ...],
    python: str = sys.executable,
    on_started: Callable[[], object] | None = None,
    graceful: bool = True,
) -> Iterator[Managed]:
    """A server of any kind serving the variant, healthy on entry, stopped by PID on exit whatever happened.

    `python`: the interpreter that runs the server (another virtualenv's, to serve the variant on other versions).
    `on_started`: called once the server process exists, before its health wait (to start a client meanwhile).
    `graceful`: stop it with SIGINT first (False: SIGKILL at once, see Managed.stop).
    """
    with tempfile.TemporaryDirectory(prefix="ctxbench-server-") as tmp:
        server = Managed(server_command(variant, config, port, python), cpus, Path(tmp) / "server.log")
        try:
            if on_started is not None:
                on_started()
            wait_healthy(server, port)
            server.processes()  # remember worker processes now that they are up
            yield server
        finally:
            server.stop(graceful)
