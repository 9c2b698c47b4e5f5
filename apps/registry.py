"""The one list of variants: what each demonstrates, its category, its library and the verdicts it must produce."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import MappingProxyType

from starlette.types import ASGIApp

from apps.checker import LEAK, LOST
from apps.contract import AUDIT, CHECKPOINTS, ENTRY, FIELDS

RECOMMENDED, PITFALL, CONTROL, LIBRARY = "recommended", "pitfall", "control", "library"
# How the context travels; the first three are the rows of the propagation matrix (scripts/matrix/app.py).
CONTEXTVAR, MUTABLE_IN_CONTEXTVAR, REQUEST_STATE = "ContextVar", "mutable object in a ContextVar", "request.state"
EXPLICIT, MODULE_GLOBAL, NOTHING = "explicit argument", "module global", "nothing"
CATEGORIES = (CONTROL, RECOMMENDED, PITFALL, LIBRARY)

# In-process scenarios the expectations are written for (apps.inprocess drives them):
CONCURRENT = "concurrent"  # one task per request, all in flight together: many connections
KEEPALIVE = "keepalive"  # each request started inside the previous one's final send: uvicorn's keep-alive path
KEEPALIVE_READS = "keepalive_reads"  # ... inside the context of its last body read: asyncio + h11 resuming a read
SCENARIOS = (CONCURRENT, KEEPALIVE, KEEPALIVE_READS)
CHAINED = (KEEPALIVE, KEEPALIVE_READS)  # one connection: what uvicorn's --reset-contextvars changes

ORDERED_POINTS = (*CHECKPOINTS, AUDIT)
DOWNSTREAM = tuple(point for point in ORDERED_POINTS if point != ENTRY)


def failing(points: tuple[str, ...], verdict: str, fields: tuple[str, ...] = FIELDS) -> frozenset[str]:
    """Failure names (`checkpoint.field:verdict`, as the checker tallies them) for every point × field given."""
    return frozenset(f"{point}.{field_name}:{verdict}" for point in points for field_name in fields)


ENTRY_LEAK = failing((ENTRY,), LEAK)
USER_TENANT = ("user_id", "tenant_id")
NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Variant:
    name: str
    category: str
    summary: str
    mechanism: str = CONTEXTVAR
    library: str | None = None
    # scenario -> the exact set of failures the variant produces there (nothing else may fail)
    expected: MappingProxyType[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    # a control whose failures depend on scheduling: the expected ones must appear, others may
    exact: bool = True

    @property
    def module(self) -> str:
        return f"apps.{self.name}"

    def load(self) -> ASGIApp:
        return importlib.import_module(self.module).app

    def expected_in(self, scenario: str) -> frozenset[str]:
        return self.expected[scenario]


def expect(
    concurrent: frozenset[str], keepalive: frozenset[str], keepalive_reads: frozenset[str] | None = None
) -> MappingProxyType[str, frozenset[str]]:
    """Expected failures per scenario; the read path defaults to the send path's."""
    reads = keepalive if keepalive_reads is None else keepalive_reads
    return MappingProxyType({CONCURRENT: concurrent, KEEPALIVE: keepalive, KEEPALIVE_READS: reads})


VARIANTS: tuple[Variant, ...] = (
    Variant(
        "baseline",
        CONTROL,
        "Same work, no context sharing: the cost floor (every checkpoint sees nothing).",
        mechanism=NOTHING,
        expected=expect(failing(DOWNSTREAM, LOST), failing(DOWNSTREAM, LOST)),
    ),
    Variant(
        "contextvar_asgi",
        RECOMMENDED,
        "ContextVars set by a pure ASGI middleware, reset in `finally`.",
        expected=expect(NONE, ENTRY_LEAK),
    ),
    Variant(
        "contextvar_isolated",
        RECOMMENDED,
        "contextvar_asgi behind an outermost pure ASGI middleware that runs each request in a fresh `Context`.",
        expected=expect(NONE, NONE),
    ),
    Variant(
        "request_state",
        RECOMMENDED,
        "A BaseHTTPMiddleware stores the context on `request.state`; code below is handed the state.",
        mechanism=REQUEST_STATE,
        expected=expect(NONE, NONE),
    ),
    Variant(
        "explicit",
        RECOMMENDED,
        "No shared storage: a dependency builds a context object passed down every call and handed back to the audit.",
        mechanism=EXPLICIT,
        expected=expect(NONE, NONE),
    ),
    Variant(
        "contextvar_basehttp",
        PITFALL,
        "ContextVars set in a BaseHTTPMiddleware before `call_next`, reset in `finally` (the seeds' guide).",
        # Its response is sent after the reset (so no send-path leak), but the body is read in call_next's task,
        # where the ContextVars are still set.
        expected=expect(NONE, NONE, ENTRY_LEAK),
    ),
    Variant(
        "contextvar_dependency",
        PITFALL,
        "User and tenant ContextVars set in dependencies, read by an audit BaseHTTPMiddleware after `call_next`.",
        expected=expect(
            failing(("middleware", AUDIT), LOST, USER_TENANT),
            failing(("middleware", AUDIT), LOST, USER_TENANT),
            # set in a dependency and never reset: a body read carries them into the next request's middleware
            ENTRY_LEAK
            | failing(("middleware", AUDIT), LOST, USER_TENANT)
            | failing(("middleware", AUDIT), LEAK, USER_TENANT),
        ),
    ),
    Variant(
        "contextvar_conditional",
        PITFALL,
        "The user ContextVar is set only for authenticated requests and never cleared (a set-only design).",
        expected=expect(NONE, ENTRY_LEAK | failing(DOWNSTREAM, LEAK, ("user_id",))),
    ),
    Variant(
        "global_state",
        CONTROL,
        "Negative control: a module-level dict holds the current context. It must be caught leaking.",
        mechanism=MODULE_GLOBAL,
        expected=expect(
            failing(("service", "task"), LEAK) | ENTRY_LEAK,
            ENTRY_LEAK,
        ),
        exact=False,
    ),
    Variant(
        "starlette_context",
        LIBRARY,
        "starlette-context's pure ASGI RawContextMiddleware with its request-id plugin (and header plugins).",
        mechanism=MUTABLE_IN_CONTEXTVAR,
        library="starlette-context",
        expected=expect(NONE, ENTRY_LEAK),
    ),
    Variant(
        "asgi_correlation_id",
        LIBRARY,
        "asgi-correlation-id's middleware and log filter for the request id; ContextVars for user and tenant.",
        library="asgi-correlation-id",
        expected=expect(NONE, ENTRY_LEAK),
    ),
    Variant(
        "structlog_contextvars",
        LIBRARY,
        "structlog's contextvars, cleared and bound per request by a pure ASGI middleware.",
        library="structlog",
        expected=expect(NONE, ENTRY_LEAK),
    ),
)

BY_NAME = MappingProxyType({variant.name: variant for variant in VARIANTS})
SUPPORT_MODULES = frozenset(
    {"__init__", "contract", "checker", "registry", "traffic", "inprocess", "conformance", "workers"}
)


def get(name: str) -> Variant:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown variant {name!r}; known: {', '.join(BY_NAME)}") from None
