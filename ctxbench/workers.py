"""gunicorn worker classes that start every request in a fresh Context: uvicorn's `--reset-contextvars` for gunicorn.

`gunicorn app:app -k uvicorn_worker.UvicornWorker` has no flag for uvicorn's `reset_contextvars` option, so a request
pipelined (or read) on a kept-alive connection can start in the previous request's context. These subclasses pass the
option through the worker's `CONFIG_KWARGS`, the hook uvicorn-worker documents for uvicorn settings. Copy this file
into your project and start gunicorn with `-k yourpackage.workers.UvicornResetWorker`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornH11Worker, UvicornWorker


class UvicornResetWorker(UvicornWorker):
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {**UvicornWorker.CONFIG_KWARGS, "reset_contextvars": True}


class UvicornH11ResetWorker(UvicornH11Worker):
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {**UvicornH11Worker.CONFIG_KWARGS, "reset_contextvars": True}
