"""An app that imports fine and fails in its lifespan startup (probe tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    raise RuntimeError("database unreachable")
    yield


app = FastAPI(lifespan=lifespan)
