"""ctxbench's installed package: the probe (`ctxbench probe`, or `probe(...)` in your tests) and what it needs.

`from ctxbench import probe, ProbeUsageError` loads the probe on first use: `import ctxbench.workers` (a gunicorn
worker class, imported by servers in other interpreters) must not pull in the probe's dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctxbench.probing.api import ProbeResult, Row, StaleValue, StartupValue, probe
    from ctxbench.probing.driver import ProbeUsageError

# public name -> the module that defines it
_EXPORTS = {
    "probe": "ctxbench.probing.api",
    "ProbeResult": "ctxbench.probing.api",
    "Row": "ctxbench.probing.api",
    "StaleValue": "ctxbench.probing.api",
    "StartupValue": "ctxbench.probing.api",
    "ProbeUsageError": "ctxbench.probing.driver",
}
__all__ = ["ProbeResult", "ProbeUsageError", "Row", "StaleValue", "StartupValue", "probe"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ctxbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # looked up once
    return value
