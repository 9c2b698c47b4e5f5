"""The building blocks each variant is made of, alone: what one context read, write or hand-over costs.

- `contextvar_get`: `ContextVar.get()` of a set variable (what every checkpoint does).
- `contextvar_set_reset`: `set()` then `reset(token)` (what a middleware does per request and variable).
- `copy_context_run`: `copy_context().run(f)` (what asyncio does for every task and callback, and run_in_threadpool).
- `state_set_get`: attribute set then get on Starlette's `State` (`request.state`).
- `explicit_3_levels`: a context object passed as an argument through three calls and read at the bottom.
- `contextvar_dict_get`: one key read from a dict held in a single ContextVar (starlette-context's layout).

- `empty_loop`: the same two nested loops doing nothing: the share of every figure above that is loop overhead.

Every benchmark runs the operation INNER times in an inner loop (pyperf divides by `inner_loops`), the same shape for
all, so they compare directly and `empty_loop` can be subtracted.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, copy_context
from dataclasses import dataclass

import pyperf
from starlette.datastructures import State

from microbench.asgi_timing import TIMER, TIMER_NAME, versions

INNER = 10  # operations per loop iteration (pyperf divides by it: inner_loops)
REQUEST_ID = "bench-r1"

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
context_dict_var: ContextVar[dict[str, str] | None] = ContextVar("context", default=None)


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str


def bench_contextvar_get(loops: int) -> float:
    request_id_var.set(REQUEST_ID)
    get = request_id_var.get
    start = TIMER()
    for _ in range(loops):
        for _ in range(INNER):
            get()
    return TIMER() - start


def bench_contextvar_set_reset(loops: int) -> float:
    var = request_id_var
    start = TIMER()
    for _ in range(loops):
        for _ in range(INNER):
            var.reset(var.set(REQUEST_ID))
    return TIMER() - start


def _read() -> str | None:
    return request_id_var.get()


def bench_copy_context_run(loops: int) -> float:
    request_id_var.set(REQUEST_ID)
    start = TIMER()
    for _ in range(loops):
        for _ in range(INNER):
            copy_context().run(_read)
    return TIMER() - start


def bench_state_set_get(loops: int) -> float:
    state = State()
    start = TIMER()
    for _ in range(loops):
        for _ in range(INNER):
            state.request_id = REQUEST_ID
            state.request_id  # noqa: B018 - the read is the operation measured
    return TIMER() - start


def _level3(ctx: RequestContext) -> str:
    return ctx.request_id


def _level2(ctx: RequestContext) -> str:
    return _level3(ctx)


def _level1(ctx: RequestContext) -> str:
    return _level2(ctx)


def bench_explicit_3_levels(loops: int) -> float:
    ctx = RequestContext(REQUEST_ID)
    start = TIMER()
    for _ in range(loops):
        for _ in range(INNER):
            _level1(ctx)
    return TIMER() - start


def bench_contextvar_dict_get(loops: int) -> float:
    context_dict_var.set({"X-Request-ID": REQUEST_ID, "X-User-ID": "bench-u1", "X-Tenant-ID": "bench-t1"})
    get = context_dict_var.get
    start = TIMER()
    for _ in range(loops):
        for _ in range(INNER):
            get()["X-Request-ID"]
    return TIMER() - start


def bench_empty_loop(loops: int) -> float:
    start = TIMER()
    for _ in range(loops):
        for _ in range(INNER):
            pass
    return TIMER() - start


BENCHMARKS: dict[str, Callable[[int], float]] = {
    "contextvar_get": bench_contextvar_get,
    "contextvar_set_reset": bench_contextvar_set_reset,
    "copy_context_run": bench_copy_context_run,
    "state_set_get": bench_state_set_get,
    "explicit_3_levels": bench_explicit_3_levels,
    "contextvar_dict_get": bench_contextvar_dict_get,
    "empty_loop": bench_empty_loop,
}


def add_metadata(runner: pyperf.Runner) -> None:
    runner.metadata["description"] = "context primitives, one operation per value unit, CPU time"
    runner.metadata["timer"] = TIMER_NAME
    runner.metadata["ctxbench_inner"] = INNER
    runner.metadata.update(versions())


if __name__ == "__main__":
    runner = pyperf.Runner()
    add_metadata(runner)
    for name, func in BENCHMARKS.items():
        runner.bench_time_func(name, func, inner_loops=INNER)
