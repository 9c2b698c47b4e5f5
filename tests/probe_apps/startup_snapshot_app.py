"""startup_state_app with the fix to copy, outermost: each request runs in a copy of the startup Context."""

from __future__ import annotations

from startup_state_app import app

from apps.contextvar_snapshot import SnapshotContextMiddleware

# added last, so outermost: Starlette builds the stack at the app's first call, when the snapshot is taken
app.add_middleware(SnapshotContextMiddleware)
