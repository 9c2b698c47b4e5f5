"""A loop-agnostic Starlette app behind the fix to copy, for hypercorn's trio worker (tests/test_trio.py)."""

from __future__ import annotations

import decimal
from contextvars import ContextVar

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from apps.contextvar_snapshot import SnapshotContextMiddleware, request_id_var, user_id_var

region_var: ContextVar[str] = ContextVar("region")  # no default: only the import-time set() shows it
region_var.set("eu-west")
decimal.getcontext().prec = 6


async def item(request: Request) -> JSONResponse:
    await anyio.sleep(0)  # a real trip through trio's scheduler: the step after it must run in the request's copy
    seen_in_thread = await anyio.to_thread.run_sync(request_id_var.get)
    return JSONResponse(
        {
            "request_id": request_id_var.get(),
            "user_id": user_id_var.get(),
            "in_thread": seen_in_thread,
            "region": region_var.get(None),
            "third": str(decimal.Decimal(1) / 3),
        }
    )


app = SnapshotContextMiddleware(Starlette(routes=[Route("/items/{item_id}", item)]))
