"""Is my app affected? Serve MODULE:APP behind a sentinel under real servers and report stale ContextVars.

The command's code is ctxbench.probing.command, the same the installed `ctxbench probe` runs (ctxbench/cli.py); this
module is its entry in the suite's index of commands (scripts/cli.py).
"""

from __future__ import annotations

from ctxbench.probing.command import add_arguments, run

__all__ = ["add_arguments", "run"]
