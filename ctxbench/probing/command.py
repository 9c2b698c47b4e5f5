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
import sys

from ctxbench.arguments import executable, existing_dir, header_name, int_range, one_of, output_file, url_path
from ctxbench.probing import analysis, sentinel
from ctxbench.probing.api import app_reference, probe
from ctxbench.probing.driver import ProbeUsageError
from ctxbench.probing.session import DEFAULT_REQUESTS, MAX_REQUESTS, MIN_REQUESTS
from ctxbench.serving import fronts, servers

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
        help="the interpreter of your app's virtualenv, with your servers (default: this one); ctxbench is not"
        " installed there",
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
    parser.add_argument(
        "--no-setting-check",
        dest="setting_check",
        action="store_false",
        help=f"do not start the {servers.RESET_FLAG} twin of a server that showed stale state (one short extra run"
        " each) to measure which values your app sets before its first request that setting would hide",
    )
    parser.add_argument("--json", type=output_file, metavar="FILE", help="write the full result as JSON")
    parser.add_argument("--show-values", action="store_true", help="also print stale values (they may be secrets)")
    parser.add_argument(
        "--traceback", action="store_true", help="show the app's whole traceback when it fails at import or startup"
    )


def _fail(message: str) -> int:
    # one error line; an app's multi-line exception message (bounded by the sentinel) follows it, indented
    print(f"{PROG}: error: {message}".replace("\n", "\n    "), file=sys.stderr)
    return 2


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        result = probe(
            args.app,
            python=args.python,
            app_dir=args.app_dir,
            servers=args.server,
            front=args.front,
            paths=args.path,
            post_path=args.post_path,
            stream_path=args.stream_path,
            identity_headers=args.identity_header,
            identity_format=args.identity_format,
            fail_on=args.fail_on,
            requests=args.requests,
            setting_check=args.setting_check,
            show_values=args.show_values,
            traceback=args.traceback,
            json_path=args.json,
            progress=_progress,
        )
    except ProbeUsageError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; every server it started has been stopped", file=sys.stderr)
        return 130
    print(result.report())
    if args.json:
        print(f"JSON written to {args.json}")
    return result.exit_code
