"""The version matrix: verdicts, matrix and a leak hunt on declared stacks of Python, FastAPI, Starlette, uvicorn."""
