"""Where a variant's instructions go: the one table from code to component, and the sums over callgrind dumps.

Why this method. Callgrind sees C functions only: CPython 3.11 runs every Python function inside the same
`_PyEval_EvalFrameDefault` (a Python-to-Python call is not even a C call), so the inclusive cost of a Python function
such as FastAPI's `solve_dependencies` is not in any callgrind file. Two sources of names are used instead, and both
are in this table:

- C_RULES name the C code a component runs, matched on callgrind's object file, source file and function: CPython's
  ContextVar and Context code (`Python/context.c`, `Python/hamt.c`), pydantic-core's compiled validators.
- PYTHON_ROOTS and the middleware layers name the Python code. microbench/bm_attribution.py wraps those functions
  and layers and keeps, per asyncio task, the stack of components entered; each time the component on top changes
  it makes callgrind dump, so every dump holds the instructions of one component's run (an await switches tasks:
  every loop callback is bracketed too, and runs under the stack of the task it steps).

Each function's EXCLUSIVE (self) cost in a dump goes to the first C rule that matches it, else to the dump's
component. Self costs are never counted twice, so the components of a
request add up exactly to its instrumented total: no nesting to subtract (an inclusive cost of a layer would hold
everything below it). Code no rule and no root names (routing, the endpoint, the service, the response, the event
loop) is the catch-all REST.

What is stated as the residual: the wrappers' own instructions. Their bookkeeping runs inside `operator.call`,
which callgrind is told not to collect (`--toggle-collect`), but the calls into it are counted; an instrumented
request is therefore a little dearer than the counted one. Per variant, residual = the counted instructions added
over baseline (bm_instructions, no wrappers) minus the sum of the components' added instructions
(scripts/bench/attribution.py).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

CONTEXTVARS = "ContextVar operations"
STEP_DRIVER = "Context.run (the isolation step driver)"
MIDDLEWARE = "middleware layers"
BASEHTTP = "BaseHTTPMiddleware machinery"
DEPENDENCIES = "dependency resolution"
VALIDATION = "parameter validation"
LOGGING = "logging and the log filter"
LIBRARY = "the library's own work"
REST = "the rest of the request"
# Stacking order of the chart and the table: what a context mechanism adds first, the shared floor last.
COMPONENTS = (
    CONTEXTVARS,
    STEP_DRIVER,
    MIDDLEWARE,
    BASEHTTP,
    DEPENDENCIES,
    VALIDATION,
    LOGGING,
    LIBRARY,
    REST,
)
DESCRIPTIONS = {
    CONTEXTVARS: "ContextVar get/set/reset, copy_context, the contexts' HAMT (CPython's C code)",
    STEP_DRIVER: "Context.run and the map that drives each step in a fresh Context (asyncio's callbacks use it too)",
    MIDDLEWARE: "the pure ASGI middlewares' own code and their send wrappers, a BaseHTTPMiddleware's dispatch",
    BASEHTTP: "Starlette's BaseHTTPMiddleware: call_next, its task group, memory streams, the streaming response",
    DEPENDENCIES: "FastAPI's solve_dependencies and the dependency functions it calls",
    VALIDATION: "FastAPI's request_params_to_args (path, query and Header() parameters) and pydantic-core",
    LOGGING: "the logging call: the record, the filter that stamps the context, the handler (loguru's too)",
    LIBRARY: "Sentry, OpenTelemetry, structlog, asgi-correlation-id, starlette-context: their middleware and calls",
    REST: "routing, the endpoint and service code, the response, the event loop and the threadpool's thread: what "
    "no rule names",
}


@dataclass(frozen=True)
class CRule:
    """A C function belongs to `component` when every given pattern matches (re.search)."""

    component: str
    function: str = ""
    source: str = ""
    library: str = ""

    def matches(self, library: str, source: str, function: str) -> bool:
        return all(
            re.search(pattern, value) for pattern, value in ((self.function, function), (self.source, source),
                                                              (self.library, library)) if pattern
        )  # fmt: skip


# First match wins.
C_RULES = (
    CRule(STEP_DRIVER, function=r"^(context_run|_?PyContext_(Enter|Exit))$", source=r"Python/context\.c$"),
    CRule(STEP_DRIVER, function=r"^map_next$"),
    CRule(CONTEXTVARS, source=r"Python/(context|hamt)\.c$"),
    # their code inlined from headers (fi= lines: another source file), by the function's name
    CRule(CONTEXTVARS, function=r"^(PyContextVar_|contextvar_|_contextvars_|hamt_|_PyHamt_|PyContext_|context_)"),
    CRule(VALIDATION, library=r"_pydantic_core"),
)

# Python functions whose run (everything they call, until a nested root or layer takes over) is the component's.
# A name imported elsewhere with `from ... import` is listed in every module that calls it by that name.
PYTHON_ROOTS = (
    (DEPENDENCIES, "fastapi.dependencies.utils", "solve_dependencies"),
    (DEPENDENCIES, "fastapi.routing", "solve_dependencies"),
    (VALIDATION, "fastapi.dependencies.utils", "request_params_to_args"),
    (LOGGING, "logging", "Logger._log"),
    (LOGGING, "loguru._logger", "Logger._log"),
    (LIBRARY, "sentry_sdk.integrations.asgi", "SentryAsgiMiddleware._run_app"),
    (LIBRARY, "sentry_sdk", "set_tag"),
    (LIBRARY, "sentry_sdk", "set_user"),
    (LIBRARY, "sentry_sdk", "capture_exception"),
    (LIBRARY, "sentry_sdk", "capture_message"),
    (LIBRARY, "opentelemetry.baggage", "set_baggage"),
    (LIBRARY, "opentelemetry.context", "attach"),
    (LIBRARY, "opentelemetry.context", "detach"),
    (LIBRARY, "structlog.contextvars", "bind_contextvars"),
    (LIBRARY, "structlog.contextvars", "clear_contextvars"),
    (LIBRARY, "loguru._logger", "Logger.contextualize"),
)
# Middleware layers by the module of their class: a library's middleware is the library's work.
LIBRARY_PACKAGES = ("sentry_sdk", "opentelemetry", "asgi_correlation_id", "starlette_context", "structlog", "loguru")
OWN_PACKAGES = ("apps",)  # the variants' own middlewares and RequestGuard, the harness layer every variant has


def layer_component(module: str, is_basehttp: bool) -> str:
    """The component of a middleware layer's own code, from its class."""
    package = module.split(".", 1)[0]
    if package in LIBRARY_PACKAGES:
        return LIBRARY
    if is_basehttp:
        return BASEHTTP  # its dispatch, the variant's code, is wrapped as MIDDLEWARE by the probe
    if package in OWN_PACKAGES:
        return MIDDLEWARE
    return REST  # Starlette's and FastAPI's own layers (errors, exceptions, exit stack): the same in every variant


def component_of(library: str, source: str, function: str, label: str) -> str:
    """Where one C function's self cost goes: its C rule, else the component that was running (the dump's label)."""
    for rule in C_RULES:
        if rule.matches(library, source, function):
            return rule.component
    return label


# --- Callgrind files -----------------------------------------------------------------------------------------------
_NAME = re.compile(r"\((\d+)\)(?: (.*))?$")
_SPEC = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl", "cfl": "fl", "fn": "fn", "cfn": "fn"}


def self_costs(lines: Iterable[str]) -> Counter[tuple[str, str, str]]:
    """(object file, source file, function) -> exclusive Ir of one callgrind dump (name compression resolved).

    A cost line right after `calls=` is the inclusive cost of that call, already counted in the callee's own lines.
    """
    names: dict[tuple[str, str], str] = {}
    costs: Counter[tuple[str, str, str]] = Counter()
    library = source = inlined = function = ""
    after_call = False
    for raw in lines:
        line = raw.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        head = line[0]
        if head.isdigit() or head in "+-*":
            if after_call:
                after_call = False
            else:
                fields = line.split()
                if len(fields) > 1:
                    costs[(library, inlined or source, function)] += int(fields[1])
            continue
        after_call = False
        key, _, rest = line.partition("=")
        if key == "calls":
            after_call = True
            continue
        kind = _SPEC.get(key)
        if kind is None:
            continue
        match = _NAME.match(rest)
        if match:
            if match.group(2) is not None:
                names[(kind, match.group(1))] = match.group(2)
            value = names.get((kind, match.group(1)), "")
        else:
            value = rest
        if key == "ob":
            library = value
        elif key == "fl":
            source, inlined = value, ""
        elif key in ("fi", "fe"):
            inlined = value
        elif key == "fn":
            function, inlined = value, ""
    return costs


def attribute(costs: Counter[tuple[str, str, str]], label: str) -> Counter[str]:
    """One dump's self costs summed by component, `label` being the component that ran while it was collected."""
    found: Counter[str] = Counter()
    for (library, source, function), cost in costs.items():
        found[component_of(library, source, function, label)] += cost
    return found


def attribute_files(dumps: Iterator[tuple[Path, str]]) -> Counter[str]:
    """Components summed over (dump file, label) pairs."""
    total: Counter[str] = Counter()
    for path, label in dumps:
        with path.open() as lines:
            total.update(attribute(self_costs(lines), label))
    return total


# --- Files -------------------------------------------------------------------------------------------------------
FILE_PREFIX = "attribution_"  # microbench/bm_attribution.py's files, one per app
SAME_RUN = "same_run_baseline"  # in a variant's file from a run of some variants: that run's baseline


def attribution_path(results_dir: Path, app: str) -> Path:
    return results_dir / f"{FILE_PREFIX}{app}.json"
