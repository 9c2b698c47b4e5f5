"""The probe's `fix:` line, written in one place: what to change on the servers where stale state was found.

Another fix (a middleware, a server setting) is one more entry here; the CLI, the API and the JSON document all take
the line from `fix_hint`.
"""

from __future__ import annotations

from ctxbench.serving import servers

# The worker classes that pass uvicorn's reset option under gunicorn: a file of the ctxbench package (in the clone and
# in the installed tool alike), meant to be copied into the user's project.
WORKERS_FILE = "ctxbench/workers.py"
GUNICORN_FIX = f"run gunicorn with --worker-class yourpackage.workers.UvicornResetWorker ({WORKERS_FILE}: copy it)"
# Without the flag nothing can be measured of what it would hide, so the fix offered is the one that hides nothing.
MIDDLEWARE_FIX = (
    "run each request in a copy of your app's startup Context: SnapshotContextMiddleware outermost (README: the fix"
    " to copy), which also keeps what your app sets before its first request"
)
# The fix that keeps what the app set before its first request (README: the fix to copy; docs/fix.md).
SNAPSHOT_FIX = "use SnapshotContextMiddleware outermost (README: the fix to copy)"
FIXED_BY_SERVER_FLAG = {"uvicorn", "gunicorn"}  # the kinds whose stale state the reset flag or worker fixes
MAX_NAMES_SHOWN = 5  # of the hidden startup values, in the one line; the report's section lists them all


def _values(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_SHOWN])
    more = f" and {len(names) - MAX_NAMES_SHOWN} more" if len(names) > MAX_NAMES_SHOWN else ""
    return f"{len(names)} value{'s' if len(names) != 1 else ''} your app sets before its first request ({shown}{more})"


def fix_hint(documents: list[dict], python: str, hidden: list[str] | None = None) -> str | None:
    """For uvicorn rows with stale state: the user's uvicorn release and whether it has the reset flag; when the
    setting check measured that the flag would hide startup values (`hidden`: their names), the snapshot middleware."""
    stale_kinds = {document["kind"] for document in documents if document["stale_found"]}
    if not stale_kinds & FIXED_BY_SERVER_FLAG:
        return None
    version = servers.uvicorn_version(python) or "not installed"
    if servers.has_reset_flag(python):
        if hidden:
            return (
                f"fix: your uvicorn ({version}) has {servers.RESET_FLAG}, but it would hide {_values(hidden)}:"
                f" {SNAPSHOT_FIX}; or, if you do not need them, pass {servers.RESET_FLAG} to uvicorn, or {GUNICORN_FIX}"
            )
        return f"fix: your uvicorn ({version}) has {servers.RESET_FLAG}: pass it to uvicorn, or {GUNICORN_FIX}"
    return (
        f"fix: your uvicorn ({version}) has no {servers.RESET_FLAG} (its --help does not list it; uvicorn has it"
        f" from {servers.RESET_FLAG_SINCE} on): upgrade to uvicorn>={servers.RESET_FLAG_SINCE} and pass it, or"
        f" {MIDDLEWARE_FIX}"
    )
