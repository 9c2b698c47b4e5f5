"""One benchmark or load run at a time on this machine: they share two cores, so overlapping runs corrupt both."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_PATH = Path(os.environ.get("CTXBENCH_LOCK", "/tmp/ctxbench-run.lock"))


class MachineBusy(RuntimeError):
    pass


@contextmanager
def exclusive_run(wait: bool = True) -> Iterator[None]:
    """Hold the machine-wide run lock (an flock, released by the kernel even if the process dies)."""
    with open(LOCK_PATH, "a") as handle:
        flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(handle, flags)
        except BlockingIOError:
            raise MachineBusy(f"another ctxbench run holds {LOCK_PATH}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
