"""The gunicorn reset workers under the suite's name (`-k apps.workers.UvicornResetWorker`): ctxbench/workers.py."""

from ctxbench.workers import UvicornH11ResetWorker, UvicornResetWorker

__all__ = ["UvicornH11ResetWorker", "UvicornResetWorker"]
