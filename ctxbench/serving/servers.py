"""Server configurations as data: a kind (uvicorn, gunicorn, hypercorn, granian, daphne), its options, a label.

Adding a server configuration is one `ServerConfig` entry; adding a server kind is one `ServerKind` entry plus the
function that builds its command line. Every configuration binds to the given host and port, one worker, no access log.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

# The setting that starts every request in a fresh Context, per kind that has one (reported as "the fix").
RESET_FLAG = "--reset-contextvars"
# The first uvicorn release that has RESET_FLAG: uvicorn/main.py of the 0.44.0 wheel has no such option, 0.45.0's has
# (checked in the wheels from PyPI; the version matrix asks each stack's uvicorn, and uvicorn-0.44 answers no).
RESET_FLAG_SINCE = "0.45.0"
RESET_WORKER = "apps.workers.UvicornResetWorker"
RESET_H11_WORKER = "apps.workers.UvicornH11ResetWorker"


UVICORN_ASK_TIMEOUT_S = 60


def has_reset_flag(python: str | Path) -> bool:
    """Whether this interpreter's uvicorn has --reset-contextvars (asked of uvicorn itself, not guessed)."""
    try:
        help_text = subprocess.run(
            [str(python), "-m", "uvicorn", "--help"],
            capture_output=True,
            text=True,
            check=False,
            timeout=UVICORN_ASK_TIMEOUT_S,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return RESET_FLAG in help_text


def uvicorn_version(python: str | Path) -> str | None:
    """The uvicorn release installed for this interpreter, or None."""
    ask = "import importlib.metadata as m; print(m.version('uvicorn'))"
    try:
        done = subprocess.run(
            [str(python), "-c", ask], capture_output=True, text=True, check=False, timeout=UVICORN_ASK_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _uvicorn(app: str, host: str, port: int, options: tuple[str, ...]) -> list[str]:
    return ["uvicorn", app, "--host", host, "--port", str(port), "--log-level", "warning", "--no-access-log", *options]


def _gunicorn(app: str, host: str, port: int, options: tuple[str, ...]) -> list[str]:
    # gunicorn writes no access log unless asked; one worker process under the arbiter
    head = ["gunicorn", app, "--bind", f"{host}:{port}", "--workers", "1", "--graceful-timeout", "1"]
    return [*head, "--log-level", "warning", *options]


def _hypercorn(app: str, host: str, port: int, options: tuple[str, ...]) -> list[str]:
    head = ["hypercorn", app, "--bind", f"{host}:{port}", "--workers", "1", "--graceful-timeout", "1"]
    return [*head, "--log-level", "warning", *options]


def _granian(app: str, host: str, port: int, options: tuple[str, ...]) -> list[str]:
    head = ["granian", "--interface", "asgi", "--host", host, "--port", str(port), "--workers", "1"]
    return [*head, "--log-level", "warning", "--no-access-log", *options, app]


def _daphne(app: str, host: str, port: int, options: tuple[str, ...]) -> list[str]:
    return ["daphne", "-b", host, "-p", str(port), "-v", "0", *options, app]


@dataclass(frozen=True, slots=True)
class ServerKind:
    name: str
    distribution: str  # the package whose version a result records
    # (app, host, port, options) -> what follows `python -m`: the module, then its arguments
    arguments: Callable[[str, str, int, tuple[str, ...]], list[str]]


KINDS = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            ServerKind("uvicorn", "uvicorn", _uvicorn),
            ServerKind("gunicorn", "gunicorn", _gunicorn),
            ServerKind("hypercorn", "hypercorn", _hypercorn),
            ServerKind("granian", "granian", _granian),
            ServerKind("daphne", "daphne", _daphne),
        )
    }
)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    label: str
    kind: str = "uvicorn"
    options: tuple[str, ...] = ()
    # the setting this configuration adds to its plain twin so each request starts in a fresh Context ("fix" in results)
    reset_setting: str | None = None
    reset_twin: str | None = None  # the label of the same server with that setting

    @property
    def server(self) -> ServerKind:
        return KINDS[self.kind]

    def command(self, app: str, host: str, port: int, python: str = sys.executable) -> list[str]:
        """The full command line serving `app` (`module:attribute`) with this configuration."""
        return [python, "-m", *self.server.arguments(app, host, port, self.options)]

    def as_dict(self) -> dict[str, object]:
        return {"label": self.label, "kind": self.kind, "options": list(self.options), "fix": self.reset_setting}


def _uvicorn_pair(loop: str, http: str) -> tuple[ServerConfig, ServerConfig]:
    plain = f"{loop}-{http}"
    options = ("--loop", loop, "--http", http)
    return (
        ServerConfig(plain, "uvicorn", options, reset_twin=f"{plain}-reset"),
        ServerConfig(f"{plain}-reset", "uvicorn", (*options, RESET_FLAG), reset_setting=RESET_FLAG),
    )


def _gunicorn_pair(label: str, worker: str, reset_worker: str) -> tuple[ServerConfig, ServerConfig]:
    reset = f"{label}-reset"
    fix = f"--worker-class {reset_worker}"
    return (
        ServerConfig(label, "gunicorn", ("--worker-class", worker), reset_twin=reset),
        ServerConfig(reset, "gunicorn", ("--worker-class", reset_worker), reset_setting=fix),
    )


UVLOOP_HTTPTOOLS, UVLOOP_HTTPTOOLS_RESET = _uvicorn_pair("uvloop", "httptools")
ASYNCIO_H11, ASYNCIO_H11_RESET = _uvicorn_pair("asyncio", "h11")
# the loop and the parser swapped: which of the two a leak path follows
ASYNCIO_HTTPTOOLS, ASYNCIO_HTTPTOOLS_RESET = _uvicorn_pair("asyncio", "httptools")
UVLOOP_H11, UVLOOP_H11_RESET = _uvicorn_pair("uvloop", "h11")
GUNICORN, GUNICORN_RESET = _gunicorn_pair("gunicorn-uvicorn", "uvicorn_worker.UvicornWorker", RESET_WORKER)
GUNICORN_H11, GUNICORN_H11_RESET = _gunicorn_pair(
    "gunicorn-uvicorn-h11", "uvicorn_worker.UvicornH11Worker", RESET_H11_WORKER
)
HYPERCORN_ASYNCIO = ServerConfig("hypercorn-asyncio", "hypercorn", ("--worker-class", "asyncio"))
HYPERCORN_UVLOOP = ServerConfig("hypercorn-uvloop", "hypercorn", ("--worker-class", "uvloop"))
# hypercorn's trio worker: a loop that sends values into coroutines. The contract's work is asyncio's (a child task
# by `asyncio.create_task`, `asyncio.sleep`), so no variant app runs there and the hunt leaves it out; the probe
# serves users' own apps on it, and tests/test_trio.py serves the fix to copy on it (it must work on any loop).
HYPERCORN_TRIO = ServerConfig("hypercorn-trio", "hypercorn", ("--worker-class", "trio"))
GRANIAN = ServerConfig("granian", "granian")  # its defaults: loop auto (uvloop when installed), runtime auto
GRANIAN_ASYNCIO = ServerConfig("granian-asyncio", "granian", ("--loop", "asyncio"))
DAPHNE = ServerConfig("daphne", "daphne")

DEFAULT = UVLOOP_HTTPTOOLS  # what `uvicorn app` picks with uvicorn[standard] installed

# The leak hunt: every kind, and every default configuration that has a fix next to its fixed twin.
LEAK_HUNT: tuple[ServerConfig, ...] = (
    UVLOOP_HTTPTOOLS,
    ASYNCIO_H11,
    UVLOOP_HTTPTOOLS_RESET,
    ASYNCIO_H11_RESET,
    ASYNCIO_HTTPTOOLS,
    UVLOOP_H11,
    ASYNCIO_HTTPTOOLS_RESET,
    UVLOOP_H11_RESET,
    GUNICORN,
    GUNICORN_H11,
    GUNICORN_RESET,
    GUNICORN_H11_RESET,
    HYPERCORN_ASYNCIO,
    HYPERCORN_UVLOOP,
    GRANIAN,
    GRANIAN_ASYNCIO,
    DAPHNE,
)
# uvicorn's other parser/loop pairs are in LEAK_HUNT now, with their twins; two workers: the full sweep only
EXTRA: tuple[ServerConfig, ...] = (
    ServerConfig("uvloop-httptools-w2", "uvicorn", ("--loop", "uvloop", "--http", "httptools", "--workers", "2")),
    HYPERCORN_TRIO,
)
ALL: tuple[ServerConfig, ...] = (*LEAK_HUNT, *EXTRA)
BY_LABEL = MappingProxyType({config.label: config for config in ALL})
# One configuration per kind, as users start it without options: the server-cost comparison and the probe's default.
PLAIN = tuple(config for config in LEAK_HUNT if config.reset_setting is None)
PER_KIND: tuple[ServerConfig, ...] = tuple({c.kind: c for c in reversed(PLAIN)}.values())[::-1]
# Behind the fronts in the hunt: where users deploy behind a proxy, each default with its fixed twin, uvicorn's loop
# and parser apart, and one configuration of every other kind.
FRONTED: tuple[ServerConfig, ...] = (
    UVLOOP_HTTPTOOLS,
    UVLOOP_HTTPTOOLS_RESET,
    ASYNCIO_H11,
    ASYNCIO_H11_RESET,
    ASYNCIO_HTTPTOOLS,
    ASYNCIO_HTTPTOOLS_RESET,
    UVLOOP_H11,
    UVLOOP_H11_RESET,
    GUNICORN,
    GUNICORN_RESET,
    HYPERCORN_ASYNCIO,
    GRANIAN,
    DAPHNE,
)
PROBE_DEFAULT: tuple[ServerConfig, ...] = (UVLOOP_HTTPTOOLS, GUNICORN, HYPERCORN_ASYNCIO, GRANIAN, DAPHNE)


def get(label: str) -> ServerConfig:
    try:
        return BY_LABEL[label]
    except KeyError:
        raise KeyError(f"unknown server label {label!r}; known: {', '.join(BY_LABEL)}") from None
