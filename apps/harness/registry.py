"""The one list of variants: what each demonstrates, its category, its library and the verdicts it must produce."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import MappingProxyType

from starlette.types import ASGIApp

from apps.harness.checker import DROPPED, LEAK, LOST, STARTUP, failure_name
from apps.harness.contract import AUDIT, CHECKPOINTS, ENTRY, FIELDS
from apps.harness.observability import EVENT, SPAN, SPAN_FIELDS

# What a variant is (never whether it is advised: that is computed from the results, scripts/report/decision.py):
# an approach to carrying context, a known pitfall, a control, or a library used as its documentation shows.
APPROACH, PITFALL, CONTROL, LIBRARY = "approach", "pitfall", "control", "library"
# How the context travels; the first three are the rows of the propagation matrix (scripts/matrix/propagation_app.py).
CONTEXTVAR, MUTABLE_IN_CONTEXTVAR, REQUEST_STATE = "ContextVar", "mutable object in a ContextVar", "request.state"
EXPLICIT, MODULE_GLOBAL, NOTHING = "explicit argument", "module global", "nothing"
CATEGORIES = (CONTROL, APPROACH, PITFALL, LIBRARY)

# Groups a command takes its variants from (a tag on the variant, never a list in the command's module):
REFERENCE = "reference"  # the cost floor every added cost is measured against (exactly one variant)
SERVER_COST = "server_cost"  # run on every server kind side by side ("What a server costs")
CLIENT_LOAD = "client_load"  # the client-CPU sweep's variant: a full, all-ok response on every request
VERSION_MATRIX = "version_matrix"  # the approaches the version matrix runs on every stack
OBSERVABILITY = "observability"  # observability libraries: the report's "What your observability tools record"
BEHIND_PROXY = "behind_proxy"  # also hunted behind each reverse proxy: the approaches, a pitfall and the control
PLAIN_CONTEXTVAR = "plain_contextvar"  # the plain approach whose fate a server decides: what a release does to it
COST_TARGET = "cost_target"  # the bench's target comparison: its subject ...
COST_TARGET_REFERENCE = "cost_target_reference"  # ... against each of these
FIX = "fix"  # the fix that needs no server setting: the report states what it costs ...
FIX_REFERENCE = "fix_reference"  # ... over the approach it fixes, with the A/A beside it

# In-process scenarios the expectations are written for (apps.harness.inprocess drives them):
CONCURRENT = "concurrent"  # one task per request, all in flight together: many connections
KEEPALIVE = "keepalive"  # each request started inside the previous one's final send: uvicorn's keep-alive path
KEEPALIVE_READS = "keepalive_reads"  # ... inside the context of its last body read: asyncio + h11 resuming a read
SCENARIOS = (CONCURRENT, KEEPALIVE, KEEPALIVE_READS)
CHAINED = (KEEPALIVE, KEEPALIVE_READS)  # one connection: what uvicorn's --reset-contextvars changes

# The extra points only the observability variants report (their server span, their error event) come last.
ORDERED_POINTS = (*CHECKPOINTS, AUDIT, SPAN, EVENT)
DOWNSTREAM = tuple(point for point in (*CHECKPOINTS, AUDIT) if point != ENTRY)


def failing(points: tuple[str, ...], verdict: str, fields: tuple[str, ...] = FIELDS) -> frozenset[str]:
    """Failure names (`checkpoint.field:verdict`, as the checker tallies them) for every point × field given."""
    return frozenset(failure_name(point, field_name, verdict) for point in points for field_name in fields)


ENTRY_LEAK = failing((ENTRY,), LEAK)
# The app's startup values (apps/harness/startup.py) out of sight at every reading: what an empty Context does.
STARTUP_POINTS = (*CHECKPOINTS, AUDIT)
DROPS_STARTUP = failing(STARTUP_POINTS, DROPPED, (STARTUP,))
USER_TENANT = ("user_id", "tenant_id")
NONE: frozenset[str] = frozenset()
# Set-only for the user: a request that starts in another's context keeps that request's user unless it has its own.
USER_LEAKS_DOWNSTREAM = ENTRY_LEAK | failing(DOWNSTREAM, LEAK, ("user_id",))


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
    tags: frozenset[str] = frozenset()
    # the exact failures on one connection when the server starts every request in an empty Context (uvicorn's
    # --reset-contextvars, the reset gunicorn worker): the connection then behaves like separate ones, and the empty
    # Context hides what the app set at startup. None: the concurrent scenario's failures, plus DROPS_STARTUP.
    with_fresh_context: frozenset[str] | None = None

    @property
    def module(self) -> str:
        return f"apps.{self.name}"

    def load(self) -> ASGIApp:
        return importlib.import_module(self.module).app

    def expected_in(self, scenario: str) -> frozenset[str]:
        return self.expected[scenario]

    def expected_with_fresh_context(self) -> frozenset[str]:
        """What one connection produces when every request starts in an empty Context (a server setting)."""
        if self.with_fresh_context is not None:
            return self.with_fresh_context
        return self.expected[CONCURRENT] | DROPS_STARTUP


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
        tags=frozenset({REFERENCE, SERVER_COST, COST_TARGET_REFERENCE}),
        mechanism=NOTHING,
        expected=expect(failing(DOWNSTREAM, LOST), failing(DOWNSTREAM, LOST)),
    ),
    Variant(
        "contextvar_asgi",
        APPROACH,
        "ContextVars set by a pure ASGI middleware, reset in `finally`.",
        tags=frozenset(
            {SERVER_COST, CLIENT_LOAD, VERSION_MATRIX, COST_TARGET, PLAIN_CONTEXTVAR, BEHIND_PROXY, FIX_REFERENCE}
        ),
        expected=expect(NONE, ENTRY_LEAK),
    ),
    Variant(
        "contextvar_snapshot",
        APPROACH,
        "One outermost pure ASGI middleware runs each request in a copy of the `Context` the app started with and "
        "sets the request's ContextVars inside it: no reset, no task, startup values kept.",
        tags=frozenset({SERVER_COST, VERSION_MATRIX, BEHIND_PROXY, FIX}),
        # its own copy of the startup Context, whatever the server starts the request in: an empty Context too
        expected=expect(NONE, NONE),
        with_fresh_context=NONE,
    ),
    Variant(
        "contextvar_isolated",
        APPROACH,
        "contextvar_asgi behind an outermost pure ASGI middleware that runs each request in a fresh `Context`.",
        tags=frozenset({SERVER_COST, VERSION_MATRIX, BEHIND_PROXY}),
        # the empty Context hides what the app set at startup, on every server
        expected=expect(DROPS_STARTUP, DROPS_STARTUP),
    ),
    Variant(
        "contextvar_isolated_task",
        APPROACH,
        "contextvar_isolated's previous mechanism, kept for comparison: the fresh `Context` given by one task per "
        "request.",
        expected=expect(DROPS_STARTUP, DROPS_STARTUP),
    ),
    Variant(
        "request_state",
        APPROACH,
        "A BaseHTTPMiddleware stores the context on `request.state`; code below is handed the state.",
        tags=frozenset({VERSION_MATRIX, BEHIND_PROXY}),
        mechanism=REQUEST_STATE,
        expected=expect(NONE, NONE),
    ),
    Variant(
        "explicit",
        APPROACH,
        "No shared storage: a dependency builds a context object passed down every call and handed back to the audit.",
        tags=frozenset({VERSION_MATRIX, BEHIND_PROXY}),
        mechanism=EXPLICIT,
        expected=expect(NONE, NONE),
    ),
    # explicit's context object built as the ContextVar variants build theirs: one read of the scope's headers in a
    # dependency, no Header() parameters. The two explicit variants differ only there, so their difference is what
    # FastAPI's header validation costs. Untagged: it carries context exactly as explicit does, which the proxy runs
    # and the version matrix already cover.
    Variant(
        "explicit_scope",
        APPROACH,
        "explicit, with the context object built once from the scope (as the ContextVar middlewares read it) in a "
        "dependency instead of from `Header()` parameters.",
        mechanism=EXPLICIT,
        expected=expect(NONE, NONE),
    ),
    Variant(
        "contextvar_basehttp",
        PITFALL,
        "ContextVars set in a BaseHTTPMiddleware before `call_next`, reset in `finally` (the seeds' guide).",
        tags=frozenset({VERSION_MATRIX}),
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
        tags=frozenset({VERSION_MATRIX, BEHIND_PROXY}),
        expected=expect(NONE, USER_LEAKS_DOWNSTREAM),
    ),
    Variant(
        "global_state",
        CONTROL,
        "Negative control: a module-level dict holds the current context. It must be caught leaking.",
        tags=frozenset({BEHIND_PROXY}),  # behind a proxy too: the cross-client judge must catch it there
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
        tags=frozenset({COST_TARGET_REFERENCE}),
        mechanism=MUTABLE_IN_CONTEXTVAR,
        library="starlette-context",
        expected=expect(NONE, ENTRY_LEAK),
    ),
    Variant(
        "asgi_correlation_id",
        LIBRARY,
        "asgi-correlation-id's middleware and log filter for the request id; ContextVars for user and tenant.",
        tags=frozenset({COST_TARGET_REFERENCE}),
        library="asgi-correlation-id",
        expected=expect(NONE, ENTRY_LEAK),
    ),
    Variant(
        "structlog_contextvars",
        LIBRARY,
        "structlog's contextvars, cleared and bound per request by a pure ASGI middleware.",
        library="structlog",
        # structlog's documented `clear_contextvars()` at the top of a request clears the app's global binds too:
        # gone below it, and on one connection at the next request's entry (it starts in the cleared context).
        expected=expect(failing(STARTUP_POINTS[1:], DROPPED, (STARTUP,)), ENTRY_LEAK | DROPS_STARTUP),
    ),
    # The three observability libraries keep per-request state in ContextVars and set the user only for
    # authenticated requests, as real apps do. On one connection a request starts in the previous one's context
    # (docs/servers.md), so each of them leaks: what they hold at entry, and the previous request's user
    # into an anonymous request. That is what the libraries do, registered as observed.
    Variant(
        "sentry_scope",
        LIBRARY,
        "sentry-sdk (Starlette/FastAPI integrations, tracing on, in-memory transport): `set_tag` per request, "
        "`set_user` when authenticated. Does more work than the others (an SDK transaction and an event per request).",
        tags=frozenset({OBSERVABILITY}),
        mechanism=MUTABLE_IN_CONTEXTVAR,
        library="sentry-sdk",
        # Sentry's ASGI middleware marks "already applied" in a ContextVar and clears the mark in `finally`: a
        # request started inside the previous one's send sees the mark, skips Sentry's middleware, and runs in the
        # previous request's isolation scope with no transaction of its own (audit: lost); an anonymous request
        # there reports the previous user, on its error event too.
        expected=expect(
            NONE,
            ENTRY_LEAK
            | failing(tuple(point for point in DOWNSTREAM if point != AUDIT), LEAK, ("user_id",))
            | failing((EVENT,), LEAK, ("user_id",))
            | failing((AUDIT,), LOST),
        ),
        # an empty Context per request also leaves the tag set at startup off every event
        with_fresh_context=DROPS_STARTUP | failing((EVENT,), DROPPED, (STARTUP,)),
    ),
    Variant(
        "otel_baggage",
        LIBRARY,
        "opentelemetry-instrumentation-fastapi with an in-memory span exporter; the identity as baggage set by a pure "
        "ASGI middleware. Does more work than the others (spans per request, exported to memory).",
        tags=frozenset({OBSERVABILITY}),
        library="opentelemetry",
        # The instrumentation makes a SERVER span from the request's traceparent only when no span is current; a
        # request started inside the previous one's send has that request's span current, so it gets an INTERNAL
        # child of it: it joins the previous request's trace and ignores its own traceparent.
        expected=expect(NONE, USER_LEAKS_DOWNSTREAM | failing((SPAN,), LEAK, SPAN_FIELDS)),
    ),
    Variant(
        "loguru_contextualize",
        LIBRARY,
        "loguru's `logger.contextualize()` in a pure ASGI middleware and a sink capturing `extra`. Does more work "
        "than the others (a loguru record and a sink call per log line).",
        tags=frozenset({OBSERVABILITY}),
        library="loguru",
        # contextualize() merges into what the context already holds: the previous request's user stays for an
        # anonymous request started in its context.
        expected=expect(NONE, USER_LEAKS_DOWNSTREAM),
    ),
)

BY_NAME = MappingProxyType({variant.name: variant for variant in VARIANTS})


def tagged(tag: str) -> tuple[str, ...]:
    """Names of the variants carrying `tag`, in registry order."""
    return tuple(variant.name for variant in VARIANTS if tag in variant.tags)


def reference() -> str:
    """The one variant every cost is measured against."""
    (name,) = tagged(REFERENCE)
    return name


def get(name: str) -> Variant:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown variant {name!r}; known: {', '.join(BY_NAME)}") from None
