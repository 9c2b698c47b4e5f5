"""The probe's traffic: bounded rows of raw HTTP/1.1 requests, keep-alive or pipelined, over a few connections.

Raw sockets rather than an HTTP library: pipelining (several requests written before any response is read) is the
path that leaks on uvicorn's default configuration, and no common client does it. The probe builds its own requests
(it knows nothing of the user's app but its paths) and sends them with ctxbench's pipelining client
(`ctxbench.pipeline.PipelineClient.exchange_raw`), which also parses the responses.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field

from ctxbench.pipeline import PipelineClient, ProtocolError
from ctxbench.probing.sentinel import CLIENT_HEADER, DEFAULT_IDENTITY_FORMAT, PHASE_HEADER

IO_TIMEOUT_S = 10.0  # a stalled server ends the exchange, never hangs the probe
ROW_TIMEOUT_S = 60.0  # a row stops by itself, whatever its budget
POST_BYTES = 256 * 1024  # large enough for the server to pause and resume its socket reader (asyncio + h11)
KEEPALIVE_CONNECTIONS = 4  # concurrent keep-alive connections, so requests interleave in the server
PIPELINE_CONNECTIONS = 2
PIPELINE_DEPTH = 8  # requests written back to back before reading
FRONT_CLIENTS = 8  # behind a front: keep-alive clients at once, each its own connection (and identity values)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the result table: one kind of traffic on one path, `requests` requests in all."""

    kind: str  # concurrent | pipelined | post | stream | stream-pipelined
    path: str
    method: str = "GET"
    body_bytes: int = 0
    connections: int = KEEPALIVE_CONNECTIONS
    depth: int = 1
    # Behind a front: each client (a keep-alive connection of its own, with its own identity values) reaches the app
    # through the proxy's pool of upstream connections, so what the proxy carries over is another client's
    behind_front: bool = False

    @property
    def label(self) -> str:
        return f"{self.kind} {self.method} {self.path}"


def plan(paths: list[str], post_path: str | None, stream_path: str | None, fronted: bool = False) -> list[Row]:
    """Every path known to leak: concurrent keep-alive and pipelined GETs per path, large bodies, streaming.

    Behind a front: FRONT_CLIENTS keep-alive clients per row and nothing pipelined (the proxies send one request at a
    time on an upstream connection, so client-side pipelining never reaches the app).
    """
    if fronted:
        clients = {"connections": FRONT_CLIENTS, "behind_front": True}
        rows = [Row("clients", path, **clients) for path in paths]
        if post_path:
            rows.append(Row("clients-post", post_path, method="POST", body_bytes=POST_BYTES, **clients))
        if stream_path:
            rows.append(Row("clients-stream", stream_path, **clients))
        return rows
    rows: list[Row] = []
    for path in paths:
        rows.append(Row("concurrent", path))
        rows.append(Row("pipelined", path, connections=PIPELINE_CONNECTIONS, depth=PIPELINE_DEPTH))
    if post_path:
        rows.append(Row("post", post_path, method="POST", body_bytes=POST_BYTES))
    if stream_path:
        rows.append(Row("stream", stream_path))
        rows.append(Row("stream-pipelined", stream_path, connections=PIPELINE_CONNECTIONS, depth=PIPELINE_DEPTH))
    return rows


def identity_value(form: str = DEFAULT_IDENTITY_FORMAT) -> str:
    """A value no other request carries, in the shape the sentinel looks for (IDENTITY_PATTERNS[form])."""
    if form == "uuid":
        return str(uuid.uuid4())
    if form == "hex":
        return secrets.token_hex(16)
    return f"ctxp-{secrets.token_hex(8)}"


def encode(
    row: Row,
    phase: str,
    host: str,
    identity: list[str],
    carry: bool,
    body: bytes,
    form: str = DEFAULT_IDENTITY_FORMAT,
    client: str = "",
) -> bytes:
    lines = [f"{row.method} {row.path} HTTP/1.1", f"Host: {host}", f"{PHASE_HEADER.decode()}: {phase}"]
    if client:  # who sent it: the sentinel tells another client's identity values from this client's own
        lines.append(f"{CLIENT_HEADER.decode()}: {client}")
    if carry:  # alternate requests only: the others must show whether they see someone else's value
        lines += [f"{name}: {identity_value(form)}" for name in identity]
    if row.method == "POST":
        lines += ["Content-Type: application/octet-stream", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class RowResult:
    row: Row
    sent: int = 0
    answered: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    first_error: str | None = None
    # per connection of the row: the most requests answered on one TCP connection (a dropped one starts again at 0)
    per_connection: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, statuses: list[int], sent: int, error: str | None) -> None:
        with self.lock:
            self.sent += sent
            self.answered += len(statuses)
            for status in statuses:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            if error is not None:
                self.errors += sent - len(statuses)
                self.first_error = self.first_error or error

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.row.kind,
            "method": self.row.method,
            "path": self.row.path,
            "sent": self.sent,
            "answered": self.answered,
            "errors": self.errors,
            "statuses": {str(code): count for code, count in sorted(self.statuses.items())},
            "first_error": self.first_error,
            "answered_per_connection": list(self.per_connection),
            "behind_front": self.row.behind_front,
        }


def run_row(
    row: Row,
    phase: str,
    host: str,
    port: int,
    requests: int,
    identity: list[str],
    form: str = DEFAULT_IDENTITY_FORMAT,
) -> RowResult:
    """Send `requests` requests of the row over its connections; bounded by ROW_TIMEOUT_S, errors counted."""
    result = RowResult(row)
    # Each connection its own share of the row (not a shared counter: a connection that starts late would get none,
    # and a row must carry requests on every connection to show a connection-scoped leak).
    shares = [requests // row.connections + (index < requests % row.connections) for index in range(row.connections)]
    deadline = time.monotonic() + ROW_TIMEOUT_S
    body = b"x" * row.body_bytes
    host_header = f"{host}:{port}"

    def connection(index: int) -> None:
        client = PipelineClient(f"http://{host_header}", io_timeout_s=IO_TIMEOUT_S)
        on_this = 0  # answered on the current TCP connection
        numbers = iter(range(index, index + shares[index]))  # every other request of a connection carries identity
        try:
            while time.monotonic() < deadline and (batch := list(itertools.islice(numbers, row.depth))):
                who = f"{phase}.{index}"  # a client is a connection of the row
                payload = b"".join(
                    encode(row, phase, host_header, identity, number % 2 == 0, body, form, who) for number in batch
                )
                try:
                    timed = client.exchange_raw(payload, len(batch))
                    result.add([item.response.status for item in timed], len(batch), None)
                    on_this += len(timed)
                except (OSError, ProtocolError) as exc:  # the client dropped the connection: the next batch reconnects
                    result.add([], len(batch), f"{type(exc).__name__}: {exc}")
                with result.lock:
                    result.per_connection[index] = max(result.per_connection[index], on_this)
                if client.sock is None:  # closed (an error, or the server's "Connection: close")
                    on_this = 0
        finally:
            client.close()

    result.per_connection = [0] * row.connections
    threads = [threading.Thread(target=connection, args=(index,), daemon=True) for index in range(row.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        # daemon threads and socket timeouts: a join that runs out leaves nothing that outlives the process
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + IO_TIMEOUT_S)
    return result
