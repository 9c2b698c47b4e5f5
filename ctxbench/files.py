"""How every result file is written: atomically (a temporary file, then a rename), as readable as a plain write."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


def write_json(path: Path, data: object) -> Path:
    """Write to a temporary file in the same folder, then rename: a reader never sees half a file."""
    return write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def umask_mode() -> int:
    """The mode a plain `open(path, "w")` would give a new file: 0o666 less the umask (0o644 under 0o022)."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        # Linux shows the umask without changing it; os.umask() would set it for a moment under sampler threads
        status = Path("/proc/self/status").read_text().splitlines()
        return 0o666 & ~int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0o600 whatever the umask: results are for others to read (a web server, a CI artifact)
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
