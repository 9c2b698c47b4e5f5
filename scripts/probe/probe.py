"""Is my app affected? Serve MODULE:APP behind a sentinel under real servers and report stale ContextVars.

Exit codes: 0 every row of every server probed was judged and none had stale state, 1 stale state found (whatever
else could not be judged; with `--fail-on kept`, only stale values the app did not replace before responding),
2 bad usage or a target that cannot be served (one line on stderr, never a traceback),
3 inconclusive: nothing stale found, but some row could not be judged (requests failed, too few answered on a
connection, unseen by the sentinel; the summary line names the servers and why), 130 interrupted (every server
stopped first).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from scripts.common.arguments import (
    executable,
    existing_dir,
    header_name,
    int_range,
    one_of,
    output_file,
    typed,
    url_path,
)
from scripts.common.lock import LOCK_PATH, MachineBusy, exclusive_run
from scripts.common.results import write_json
from scripts.load import fronts, servers
from scripts.load.process import LeftBehind
from scripts.load.servers import ServerConfig
from scripts.probe import analysis, sentinel
from scripts.probe.driver import ProbeError, Target, install_sentinel, preflight, probe_server
from scripts.probe.traffic import KEEPALIVE_CONNECTIONS, PIPELINE_CONNECTIONS, plan

DEFAULT_REQUESTS = 200  # per row: enough for pipelined requests to start inside earlier ones many times over
MAX_REQUESTS = 100_000
# Fewer, and some connection of a row cannot carry the requests a connection-scoped leak needs to show.
MIN_REQUESTS = analysis.MIN_ANSWERED_PER_CONNECTION * max(KEEPALIVE_CONNECTIONS, PIPELINE_CONNECTIONS)
PROG = "ctxbench probe"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "app", type=app_reference, metavar="MODULE:APP", help="the ASGI app to probe, as you pass it to uvicorn"
    )
    parser.add_argument(
        "--server",
        action="append",
        type=one_of("server label", servers.BY_LABEL),
        metavar="LABEL",
        help="server configuration (repeatable; labels of `ctxbench load`); default: "
        + ", ".join(config.label for config in servers.PROBE_DEFAULT),
    )
    parser.add_argument(
        "--front",
        type=one_of("front", fronts.BY_LABEL),
        default=fronts.DIRECT_FRONT.label,
        metavar="LABEL",
        help="the reverse proxy your deployment puts before the server, started on 127.0.0.1 with upstream keep-alive"
        f" ({', '.join(fronts.BY_LABEL)}; default %(default)s): each client is then a keep-alive connection of its"
        " own, and data another client sent is counted apart",
    )
    parser.add_argument(
        "--python",
        type=executable,
        help="the interpreter of your app's virtualenv (default: this one); ctxbench is not installed there",
    )
    parser.add_argument(
        "--app-dir", type=existing_dir, help="your project's root, where MODULE is imported from (default: cwd)"
    )
    parser.add_argument(
        "--path", action="append", type=url_path, metavar="PATH", help="GET path to drive (repeatable; default /)"
    )
    parser.add_argument(
        "--post-path", type=url_path, metavar="PATH", help="path that takes POST bodies: sent 256 KiB bodies"
    )
    parser.add_argument("--stream-path", type=url_path, metavar="PATH", help="GET path with a streaming response")
    parser.add_argument(
        "--identity-header",
        action="append",
        type=header_name,
        metavar="NAME",
        default=[],
        help="header carrying per-request identity (repeatable): a fresh value on every other request",
    )
    parser.add_argument(
        "--identity-format",
        type=one_of("identity format", sentinel.IDENTITY_PATTERNS),
        default=sentinel.DEFAULT_IDENTITY_FORMAT,
        help="what identity values look like: uuid (a UUID4, which request-id libraries validate), hex (32 hex"
        " digits) or token (ctxp-<16 hex>); default: %(default)s",
    )
    parser.add_argument(
        "--fail-on",
        type=one_of("stale state to fail on", analysis.FAIL_ON),
        default="any",
        help="any: exit 1 on any stale ContextVar (default); kept: only on values the app did not replace before"
        " responding (for teams that checked their overwrites)",
    )
    parser.add_argument(
        "--requests",
        type=int_range(MIN_REQUESTS, MAX_REQUESTS),
        default=DEFAULT_REQUESTS,
        help=f"requests per row (server x traffic), at least {MIN_REQUESTS}: each connection needs "
        f"{analysis.MIN_ANSWERED_PER_CONNECTION} answered requests to show a leak",
    )
    parser.add_argument("--json", type=output_file, metavar="FILE", help="write the full result as JSON")
    parser.add_argument("--show-values", action="store_true", help="also print stale values (they may be secrets)")
    parser.add_argument(
        "--traceback", action="store_true", help="show the app's whole traceback when it fails at import or startup"
    )


def app_reference(text: str) -> str:
    module, _, attribute = text.partition(":")
    if not module or not attribute or any(character.isspace() for character in text):
        raise argparse.ArgumentTypeError(f"the app must be MODULE:APP, got {text!r}")
    return text


typed(app_reference, "app")


def _fail(message: str) -> int:
    # one error line; an app's multi-line exception message (bounded by the sentinel) follows it, indented
    print(f"{PROG}: error: {message}".replace("\n", "\n    "), file=sys.stderr)
    return 2


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _python(given: str | None) -> str:
    if given is None:
        return sys.executable
    if os.sep not in given:
        found = shutil.which(given)
        if found is None:
            raise ProbeError(f"no Python interpreter named {given!r} on PATH")
        return found
    # abspath, not resolve(): a virtualenv's python is a symlink, and following it would leave the virtualenv
    return os.path.abspath(given)


def _configs(labels: list[str] | None) -> list[ServerConfig]:
    if not labels:
        return list(servers.PROBE_DEFAULT)
    configs = []
    for label in dict.fromkeys(labels):
        try:
            configs.append(servers.get(label))
        except KeyError as exc:
            raise ProbeError(exc.args[0]) from None
    return configs


def _check_paths(args: argparse.Namespace) -> list[str]:
    paths = args.path or ["/"]  # an unknown path still runs the app's middleware
    for path in [*paths, args.post_path, args.stream_path]:
        if path is not None and (not path.startswith("/") or any(c.isspace() for c in path)):
            raise ProbeError(f"a path must start with / and hold no spaces, got {path!r}")
    for name in args.identity_header:
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise ProbeError(f"not a header name: {name!r}")
    return paths


def probe(
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
    progress: Callable[[str], None] = lambda line: None,
    front: fronts.Front = fronts.DIRECT_FRONT,
) -> dict:
    """The whole probe as data (raises ProbeError); `run` prints it. Tests pass configurations of their own."""
    if ":" not in app:
        raise ProbeError(f"the app must be MODULE:APP, got {app!r}")
    if not app_dir.is_dir():
        raise ProbeError(f"no such app directory: {app_dir}")
    if front.missing():
        raise ProbeError(front.missing() or "")
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
        hint = fix_hint(documents, python)
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


def fix_hint(documents: list[dict], python: str) -> str | None:
    """For uvicorn rows with stale state: the user's uvicorn release and whether it has the reset flag."""
    stale_kinds = {document["kind"] for document in documents if document["stale_found"]}
    if not stale_kinds & {"uvicorn", "gunicorn"}:
        return None
    version = servers.uvicorn_version(python) or "not installed"
    if servers.has_reset_flag(python):
        return (
            f"fix: your uvicorn ({version}) has {servers.RESET_FLAG}: pass it to uvicorn, or run gunicorn with"
            f" --worker-class {servers.RESET_WORKER} (apps/workers.py, copy it into your project)"
        )
    return (
        f"fix: your uvicorn ({version}) has no {servers.RESET_FLAG} (its --help does not list it; uvicorn has it"
        f" from {servers.RESET_FLAG_SINCE} on): upgrade to uvicorn>={servers.RESET_FLAG_SINCE} and pass it, or start"
        f" each request in a fresh Context in your outermost middleware (README: the fix that needs no server setting)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        configs = _configs(args.server)
        paths = _check_paths(args)
        app_dir = Path(os.path.abspath(args.app_dir or os.getcwd()))
        document = probe(
            args.app,
            configs,
            python=_python(args.python),
            app_dir=app_dir,
            paths=paths,
            post_path=args.post_path,
            stream_path=args.stream_path,
            identity=tuple(args.identity_header),
            requests=args.requests,
            show_values=args.show_values,
            traceback=args.traceback,
            identity_format=args.identity_format,
            fail_on=args.fail_on,
            progress=_progress,
            front=fronts.get(args.front),
        )
    except ProbeError as exc:
        return _fail(str(exc))
    except LeftBehind as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; every server it started has been stopped", file=sys.stderr)
        return 130
    print(analysis.table(document["servers"]))
    print()
    print(analysis.verdict(document["servers"]))
    if document["fix_hint"]:
        print(document["fix_hint"])
    if args.json:
        write_json(args.json, document)
        print(f"JSON written to {args.json}")
    return document["exit_code"]
