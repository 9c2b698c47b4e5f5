"""`ctxbench probe`: serve a user's own ASGI app behind a sentinel and report ContextVars that outlive a request."""
