"""A set-only tenant ContextVar, and state set at import (a ContextVar, decimal precision, a structlog bind)."""

from __future__ import annotations

import decimal
from contextvars import ContextVar

import structlog
from fastapi import FastAPI, Request

region_var: ContextVar[str] = ContextVar("region")
region_var.set("eu-west-1")  # at import: every request reads it, none sets it
decimal.getcontext().prec = 6
structlog.contextvars.bind_contextvars(service="billing")

tenant_var: ContextVar[str | None] = ContextVar("tenant", default=None)
app = FastAPI()


@app.middleware("http")
async def tenant_middleware(request: Request, call_next):  # type: ignore[no-untyped-def]
    tenant = request.headers.get("x-tenant-id")
    if tenant is not None:
        tenant_var.set(tenant)
    return await call_next(request)


@app.get("/")
async def root() -> dict[str, str | None]:
    return {"tenant": tenant_var.get(), "region": region_var.get(None), "total": str(decimal.Decimal(1) / 3)}
