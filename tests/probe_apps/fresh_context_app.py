"""set_only_app with the fix that needs no server setting: each request runs in a new, empty Context (probe tests)."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from set_only_app import app as leaky_app


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    # outermost: the whole request runs in a Context of its own, whatever the server hands over
    await asyncio.create_task(leaky_app(scope, receive, send), context=contextvars.Context())
