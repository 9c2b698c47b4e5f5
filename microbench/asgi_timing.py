"""Shared by the app and depth benchmarks: CPU-time N in-process ASGI requests on a fresh event loop, versions."""

from __future__ import annotations

import asyncio
import importlib.metadata
import time

from starlette.types import ASGIApp

from apps.harness import inprocess
from apps.harness.traffic import RequestSpec

# CPU time of the whole process: the threadpool thread does part of every request, and CPU time is what other jobs on
# this shared machine disturb least (wall-clock medians moved 36% under load where CPU time held within 2%).
TIMER = time.process_time
TIMER_NAME = "time.process_time"
VERSIONED_PACKAGES = ("fastapi", "starlette", "uvicorn", "anyio", "pydantic", "pyperf")


def time_requests(loops: int, app: ASGIApp, spec: RequestSpec) -> float:
    """CPU seconds for `loops` sequential requests, each in its own task as a server runs it, on a new event loop.

    The loop, anyio's worker thread and its limiter are loop-bound, so they are created here for every value; one
    untimed request first pays their start-up, which a long-running server pays once.
    """

    async def measure() -> float:
        loop = asyncio.get_running_loop()
        await loop.create_task(inprocess.call(app, spec))
        start = TIMER()
        for _ in range(loops):
            await loop.create_task(inprocess.call(app, spec))
        return TIMER() - start

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(measure())
    finally:
        loop.close()


def versions() -> dict[str, str]:
    """Versions of the stack under test, as pyperf metadata (`<package>_version`)."""
    found = {}
    for name in VERSIONED_PACKAGES:
        try:
            found[f"{name}_version"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[f"{name}_version"] = "absent"
    return found
