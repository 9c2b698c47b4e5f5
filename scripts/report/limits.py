"""What each way of carrying context cannot do: read off the propagation matrix, or true by construction."""

from __future__ import annotations

from apps.harness import registry
from scripts.matrix import propagation_app as m
from scripts.matrix.matrix import column

# With pure ASGI outside BaseHTTPMiddleware: the BaseHTTP layer's read after call_next, and the outer layer's.
AFTER_CALL_NEXT = column(m.BASEHTTP_AFTER, m.ASGI_OUTSIDE)
OUTSIDE_BASEHTTP = column(m.ASGI_AFTER, m.ASGI_OUTSIDE)

# (mechanism, set in, read at, the sentence that holds when the cell is `none`)
MATRIX_LIMITS = (
    (
        m.CONTEXTVAR,
        m.ASYNC_DEP,
        AFTER_CALL_NEXT,
        "a value set in a dependency is invisible to a BaseHTTPMiddleware after `call_next`",
    ),
    (
        m.CONTEXTVAR,
        m.ASYNC_DEP,
        OUTSIDE_BASEHTTP,
        "a value set in a dependency is invisible to a middleware outside a BaseHTTPMiddleware",
    ),
    (m.CONTEXTVAR, m.SYNC_DEP, m.ENDPOINT, "a value set in a sync dependency (run in a worker thread) is lost"),
    (m.CONTEXTVAR, m.ASGI_MW, m.EXECUTOR, "`loop.run_in_executor` does not carry it (`asyncio.to_thread` does)"),
    (m.CONTEXTVAR, m.ASYNC_ENDPOINT, m.DEPENDENCY, "a value set in the endpoint is invisible to its dependencies"),
    (m.MUTABLE, m.ASGI_MW, m.EXECUTOR, "`loop.run_in_executor` does not carry it"),
    (
        m.REQUEST_STATE,
        m.ASGI_MW,
        column(m.ASGI_BEFORE, m.ASGI_OUTSIDE),
        "nothing above the layer that sets it can read it before the app runs",
    ),
)
MATRIX_SHARED = (
    (m.REQUEST_STATE, m.LIFESPAN, m.ENDPOINT, "state set in the lifespan is a shallow copy shared by every request"),
)
BY_CONSTRUCTION = {
    registry.REQUEST_STATE: "code below the endpoint (services, tasks, threads, log filters) must be handed the "
    "request or its state",
    registry.EXPLICIT: "every function on the path takes the context as an argument; code that is not yours "
    "(a log filter, a library callback) must be handed it, and middleware sees it only if the app hands it back",
    registry.MODULE_GLOBAL: "one value for the whole process: any await lets another request overwrite it",
    registry.NOTHING: "nothing is shared",
}


def limits_of(mechanism: str, matrix: dict | None) -> list[str]:
    """Sentences that hold for `mechanism`: matrix ones only where the matrix run confirms them."""
    found = []
    if matrix is not None:
        cells = matrix["cells"]
        for kind, set_point, column, sentence in MATRIX_LIMITS:
            if kind == mechanism and cells[kind][set_point][column]["label"] == "none":
                found.append(sentence)
        for kind, set_point, column, sentence in MATRIX_SHARED:
            if kind == mechanism and cells[kind][set_point][column]["label"] == "lifespan":
                found.append(sentence)
    if mechanism in BY_CONSTRUCTION:
        found.append(BY_CONSTRUCTION[mechanism])
    return found
