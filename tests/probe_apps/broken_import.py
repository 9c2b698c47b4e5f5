"""An app whose module fails at import time, as a missing setting would make it (probe tests)."""

from __future__ import annotations

raise RuntimeError("DATABASE_URL is not set")
