"""What every variant app sets before its first request, set the way apps set it, and what a checkpoint sees of it.

Real apps put values in the import-time `Context` before any request: a `ContextVar.set()` at module level, decimal
precision through `decimal.getcontext()`, a structlog global bind. On uvicorn's default configuration (and on
hypercorn, granian and daphne) every request sees them; an empty `Context` per request (uvicorn's
`--reset-contextvars`, the fresh-Context middleware) hides all three. The contract applies them once, when it is
imported (every variant imports it at its own import time, in the context its server imports the app in), so no
variant repeats them, and `missing()` tells a checkpoint which of them it cannot see, as a bit mask:
bit 1 the ContextVar, bit 2 the decimal precision, bit 4 structlog's bind (0: every startup value is visible).

Where structlog is not installed (an old version stack) its bit is never set: there is nothing to drop.
"""

from __future__ import annotations

import contextvars
import decimal
from contextvars import ContextVar

try:
    import structlog.contextvars as structlog_contextvars
except ImportError:  # pragma: no cover - the version stacks have no structlog
    structlog_contextvars = None

# A ContextVar with no default: only the import-time set() makes it visible.
startup_var: ContextVar[str] = ContextVar("ctxbench_startup")
STARTUP_VALUE = "set-before-the-first-request"
PRECISION = 6  # decimal's default is 28: a request that computes with 28 digits lost the app's setting
LOG_KEY, LOG_VALUE = "service", "ctxbench"  # structlog.contextvars.bind_contextvars(service="ctxbench")
NAMES = ("contextvar", "decimal", "structlog")  # bit 1 << index of each, in missing()'s mask
CONTEXTVAR_BIT, DECIMAL_BIT, STRUCTLOG_BIT = 1, 2, 4
ALL_KEPT = 0


def _apply() -> ContextVar[object] | None:
    """Set the three startup values in the current Context; the structlog bind's ContextVar, found once."""
    startup_var.set(STARTUP_VALUE)
    decimal.getcontext().prec = PRECISION
    if structlog_contextvars is None:
        return None
    structlog_contextvars.bind_contextvars(**{LOG_KEY: LOG_VALUE})
    # structlog keeps one ContextVar per key (named with its prefix): reading that one var is what get_contextvars()
    # does for every var of the Context, at a fraction of the cost (it runs at every checkpoint of every request).
    name = f"{structlog_contextvars.STRUCTLOG_KEY_PREFIX}{LOG_KEY}"
    return next(var for var in contextvars.copy_context() if var.name == name)


_log_var = _apply()


def missing() -> int:
    """Which startup values the current Context does not show (the bit mask above; 0: all of them)."""
    mask = ALL_KEPT
    if startup_var.get(None) != STARTUP_VALUE:
        mask |= CONTEXTVAR_BIT
    if decimal.getcontext().prec != PRECISION:
        mask |= DECIMAL_BIT
    if _log_var is not None and _log_var.get(None) != LOG_VALUE:  # clear_contextvars() leaves Ellipsis
        mask |= STRUCTLOG_BIT
    return mask
