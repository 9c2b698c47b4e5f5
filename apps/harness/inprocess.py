"""Drive a variant app in-process through raw ASGI scope, receive and send: no socket, no HTTP client."""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TypeVar

from starlette.types import ASGIApp, Message

from apps.harness.traffic import RequestSpec

T = TypeVar("T")
RECEIVE_CHUNK_BYTES = 64 * 1024  # how a server hands a large body over: in pieces


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def http_scope(
    method: str, path: str, headers: list[tuple[bytes, bytes]], query: bytes = b"", state: dict | None = None
) -> dict:
    """A raw HTTP scope as a server builds it (`state`: the shallow copy of the lifespan state a server hands over)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {} if state is None else dict(state),
    }


def build_scope(spec: RequestSpec) -> dict:
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in spec.headers().items()]
    if spec.method == "POST":
        headers.append((b"content-length", str(spec.body_size).encode()))
    return http_scope(spec.method, spec.path, headers, spec.query.encode())


def body_messages(body: bytes) -> list[Message]:
    pieces = [body[i : i + RECEIVE_CHUNK_BYTES] for i in range(0, len(body), RECEIVE_CHUNK_BYTES)] or [b""]
    return [{"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1} for i, piece in enumerate(pieces)]


async def call(
    app: ASGIApp, spec: RequestSpec, on_complete: Callable[[contextvars.Context | None], None] | None = None
) -> Reply:
    """One request of the contract through the app (see `call_scope`)."""
    return await call_scope(app, build_scope(spec), spec.body(), on_complete)


async def call_scope(
    app: ASGIApp, scope: dict, body: bytes, on_complete: Callable[[contextvars.Context | None], None] | None = None
) -> Reply:
    """One request through the app, its body handed over in pieces; an exception is answered 500, as a server does.

    `on_complete` runs inside the final `send`, as a server's next-request hook does; it is handed a copy of the
    context of the last `receive()` that delivered body, if any (where a paused read would have been resumed).
    """
    incoming = body_messages(body)
    status = 0
    headers: dict[str, str] = {}
    chunks: list[bytes] = []
    reading_context: contextvars.Context | None = None

    async def receive() -> Message:
        nonlocal reading_context
        if incoming:
            reading_context = contextvars.copy_context()
            return incoming.pop(0)
        await asyncio.Event().wait()  # a client that never disconnects while the app runs
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers.update((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False) and on_complete is not None:
                on_complete(reading_context)

    try:
        await app(scope, receive, send)
    except Exception:
        if status == 0:
            status = 500
    return Reply(status, headers, b"".join(chunks))


async def concurrently(app: ASGIApp, specs: list[RequestSpec]) -> list[Reply]:
    """Every request in its own task, all in flight together: what a server does with many connections."""
    return list(await asyncio.gather(*(asyncio.create_task(call(app, spec)) for spec in specs)))


async def chained(
    app: ASGIApp, specs: list[RequestSpec], fresh_context: bool = False, from_reads: bool = False
) -> list[Reply]:
    """Requests on one keep-alive connection, each started from inside the previous one, as uvicorn starts them.

    By default the next request's task is created inside the previous one's final `send`: where uvicorn's HTTP/1.1
    protocols start a pipelined (or early-completed) next request, so the new task copies the previous request's
    context. `from_reads=True` models the other path (asyncio + h11): a request that reads its body resumes the
    paused socket reader from inside its own task, and the connection's later data, the next request included, is
    then handled in a copy of that task's context. `fresh_context=True` models `--reset-contextvars`, which starts
    every request task in an empty Context.
    """
    replies: list[Reply | None] = [None] * len(specs)
    tasks: list[asyncio.Task[None]] = []

    def start(index: int, reading_context: contextvars.Context | None = None) -> None:
        if index >= len(specs) or index < len(tasks):
            return

        async def run() -> None:
            replies[index] = await call(app, specs[index], on_complete=lambda read: start(index + 1, read))
            start(index + 1)  # a request that failed before its final send still lets the next one in

        if fresh_context:
            context = contextvars.Context()
        elif from_reads and reading_context is not None:
            context = reading_context
        else:
            context = None  # the current one: the previous request's, copied by create_task
        tasks.append(asyncio.get_running_loop().create_task(run(), context=context))

    start(0)
    awaited = 0
    while awaited < len(tasks):  # each pass awaits only the tasks started since the last: linear, not quadratic
        pending, awaited = tasks[awaited:], len(tasks)
        await asyncio.gather(*pending)
    return [reply for reply in replies if reply is not None]


def run(coro: Coroutine[object, object, T]) -> T:
    """Run a driver coroutine in a copy of the context the apps were imported in, as a freshly started server does.

    A server imports the app, then serves every connection from that context: what the app set before its first
    request (apps/harness/startup.py) is visible to every request of the default configuration. The copy keeps
    whatever the drive sets from reaching the caller.
    """
    return contextvars.copy_context().run(asyncio.run, coro)
