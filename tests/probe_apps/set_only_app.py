"""A user's app with a set-only ContextVar (the tenant is set when a request names one, never cleared): probe tests."""

from __future__ import annotations

from contextvars import ContextVar

from fastapi import FastAPI, Request

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
    return {"tenant": tenant_var.get()}
