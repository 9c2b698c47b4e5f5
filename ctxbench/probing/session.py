"""One probe run as data: the sentinel installed, the user's interpreter checked, every server driven, one document.

The typed API (ctxbench.probing.api) checks the user's options and calls `probe_document`; tests call it directly
with server configurations of their own.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ctxbench import environment
from ctxbench.lock import LOCK_PATH, MachineBusy, exclusive_run
from ctxbench.probing import analysis, sentinel, startup
from ctxbench.probing.driver import ProbeUsageError, Target, install_sentinel, preflight, probe_server
from ctxbench.probing.fixes import fix_hint
from ctxbench.probing.traffic import KEEPALIVE_CONNECTIONS, PIPELINE_CONNECTIONS, plan
from ctxbench.serving import fronts
from ctxbench.serving.servers import ServerConfig

DEFAULT_REQUESTS = 200  # per row: enough for pipelined requests to start inside earlier ones many times over
MAX_REQUESTS = 100_000
# Fewer, and some connection of a row cannot carry the requests a connection-scoped leak needs to show.
MIN_REQUESTS = analysis.MIN_ANSWERED_PER_CONNECTION * max(KEEPALIVE_CONNECTIONS, PIPELINE_CONNECTIONS)


def probe_document(
    app: str,
    configs: list[ServerConfig],
    *,
    python: str,
    app_dir: Path,
    paths: list[str],
    post_path: str | None = None,
    stream_path: str | None = None,
    identity: tuple[str, ...] = (),
    requests: int = DEFAULT_REQUESTS,
    show_values: bool = False,
    traceback: bool = False,
    identity_format: str = sentinel.DEFAULT_IDENTITY_FORMAT,
    fail_on: str = "any",
    setting_check: bool = True,
    progress: Callable[[str], None] = lambda line: None,
    front: fronts.Front = fronts.DIRECT_FRONT,
) -> dict:
    """The whole probe as one JSON-ready document (raises ProbeUsageError). Its files live in a temporary directory,
    removed at the end: nothing is written next to ctxbench or into the user's project. `setting_check`: also start
    the reset twin of each configuration that showed stale state, to measure what the setting would hide of the
    app's startup values (ctxbench.probing.startup)."""
    if ":" not in app:
        raise ProbeUsageError(f"the app must be MODULE:APP, got {app!r}")
    if not app_dir.is_dir():
        raise ProbeUsageError(f"no such app directory: {app_dir}")
    if front.missing():
        raise ProbeUsageError(front.missing() or "")
    where = ", ".join(c.label for c in configs) + ("" if front.is_direct else f", behind {front.label}")
    progress(f"probing {app} under {where} ...")
    rows = plan(paths, post_path, stream_path, fronted=not front.is_direct)
    with tempfile.TemporaryDirectory(prefix="ctxbench-probe-") as tmp:
        target = Target(app, python, app_dir, Path(tmp), identity, show_values, traceback, identity_format)
        install_sentinel(target)
        found = preflight(target, configs)
        documents = []
        with _machine(progress):  # the machine's two cores are shared with ctxbench's load runs: wait our turn
            for config in configs:
                progress(f"{config.label}: starting")
                served = probe_server(target, config, rows, requests, progress, front)
                documents.append(analysis.server_document(served))
            checks = startup.check(target, configs, documents, progress) if setting_check else []
        hint = fix_hint(documents, python, startup.hidden_names(checks))
    parameters = {"app": app, "servers": [config.label for config in configs], "front": front.label}
    return {
        "app": app,
        "app_dir": str(app_dir),
        "python": python,
        "python_version": found["python"],
        "requests_per_row": requests,
        "identity_headers": list(identity),
        "identity_format": identity_format,
        "front": front.label,
        "servers": documents,
        "stale_found": any(document["stale_found"] for document in documents),
        "inconclusive": any(document["inconclusive"] for document in documents),
        "fail_on": fail_on,
        "exit_code": analysis.exit_code(documents, fail_on),
        "fix_hint": hint,
        "setting_checks": checks,  # what an empty Context per request would hide of the app's startup values
        # ctxbench's side (its release, this machine) and the app's side: what the user's interpreter runs it on
        "environment": {**environment.describe(parameters), "app_packages": found.get("versions", {})},
    }


@contextlib.contextmanager
def _machine(progress: Callable[[str], None]) -> Iterator[None]:
    """The machine lock, saying so when another ctxbench run holds it (a wait of minutes is not a hang)."""
    try:
        with exclusive_run(wait=False):
            yield
            return
    except MachineBusy:
        progress(f"waiting for the machine lock: another ctxbench run holds {LOCK_PATH} ...")
    with exclusive_run():
        progress("lock acquired")
        yield
