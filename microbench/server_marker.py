"""A variant app behind one pass-through check for a marker path: where callgrind cuts a server's counts into segments.

`scripts/load/server_instructions.py` runs a whole server process under `valgrind --tool=callgrind
--dump-before=getsid` serving `microbench.server_marker:app`; the variant is named by the environment variable
CTXBENCH_MARKED_VARIANT. A request to MARKER_PATH calls `os.getsid(0)` (nothing in any server calls libc's getsid:
gunicorn's workers call getppid, which is why the in-process counts' marker is not used here) and answers 204;
every other request (and lifespan) goes to the variant's app unchanged, after one comparison of the scope's path.
"""

from __future__ import annotations

import os

from starlette.types import Receive, Scope, Send

from apps.harness import registry

VARIANT_ENV = "CTXBENCH_MARKED_VARIANT"
MARKER_PATH = "/__ctxbench_marker"
MARKER_FUNCTION = "getsid"  # the libc symbol callgrind dumps before


class UnknownVariant(LookupError):
    """CTXBENCH_MARKED_VARIANT is unset or not a registered variant."""


def _variant_app() -> object:
    name = os.environ.get(VARIANT_ENV, "")
    if name not in registry.BY_NAME:
        raise UnknownVariant(f"{VARIANT_ENV}={name!r} is not a registered variant")
    return registry.get(name).load()


inner = _variant_app()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http" and scope["path"] == MARKER_PATH:
        os.getsid(0)  # callgrind writes the counts so far to a new file and zeroes them
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await inner(scope, receive, send)
