"""A raw HTTP/1.1 client that pipelines: several requests written back to back before any response is read.

The probe's traffic and the suite's load tests share it; the suite's requests of the HTTP contract are encoded in
loadtests.pipeline, which adds `exchange(specs)`.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

READ_BYTES = 64 * 1024
CONNECT_TIMEOUT_S = 5.0
IO_TIMEOUT_S = 30.0  # a stalled server must end the exchange, never hang a load run


class ProtocolError(ValueError):
    """The server's bytes are not the HTTP/1.1 responses this client understands."""


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    keep_alive: bool = True


@dataclass
class ResponseParser:
    """Incremental parser: feed bytes, take complete responses (Content-Length or chunked bodies)."""

    buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Response]:
        self.buffer += data
        done: list[Response] = []
        while (response := self._take_one()) is not None:
            done.append(response)
        return done

    def _take_one(self) -> Response | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        status_line = head[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
            raise ProtocolError(f"bad status line {head[0]!r}")
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"bad header line {line!r}")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        status = int(status_line[1])
        if 100 <= status < 200 or status in (204, 304):  # no body; an interim 1xx is followed by the real answer
            del self.buffer[:start]
            return self._take_one() if status < 200 else Response(status, headers, b"")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parsed = self._chunked(start)
            if parsed is None:
                return None
            body, consumed = parsed
        else:
            length_text = headers.get("content-length", "0")
            if not length_text.isdigit():
                raise ProtocolError(f"bad Content-Length {length_text!r}")
            consumed = start + int(length_text)
            if len(self.buffer) < consumed:
                return None
            body = bytes(self.buffer[start:consumed])
        del self.buffer[:consumed]
        keep_alive = headers.get("connection", "").lower() != "close"
        return Response(status, headers, body, keep_alive)

    def _chunked(self, position: int) -> tuple[bytes, int] | None:
        body = bytearray()
        while True:
            line_end = self.buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size_text = bytes(self.buffer[position:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {size_text!r}") from None
            chunk_start = line_end + 2
            if size == 0:
                trailer_end = self.buffer.find(b"\r\n\r\n", line_end)  # no trailers: the CRLF after "0"
                if trailer_end < 0:
                    return None
                return bytes(body), trailer_end + 4
            if len(self.buffer) < chunk_start + size + 2:
                return None
            body += self.buffer[chunk_start : chunk_start + size]
            position = chunk_start + size + 2


@dataclass(slots=True)
class Timed:
    """One response of a pipelined batch and the milliseconds from the batch's first byte written to its last byte."""

    response: Response
    elapsed_ms: float


class PipelineClient:
    """One keep-alive connection; `exchange_raw` writes a whole batch, then reads the responses in order."""

    def __init__(self, base_url: str, io_timeout_s: float = IO_TIMEOUT_S) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"pipelining needs a plain http:// host, got {base_url!r}")
        self.address = (parts.hostname, parts.port or 80)
        self.host_header = parts.netloc
        self.io_timeout_s = io_timeout_s
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _connect(self) -> socket.socket:
        if self.sock is None:
            sock = socket.create_connection(self.address, timeout=CONNECT_TIMEOUT_S)
            sock.settimeout(self.io_timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = sock
        return self.sock

    def exchange_raw(self, payload: bytes, expected: int) -> list[Timed]:
        """Write the whole payload, then read `expected` responses; on any error drop the connection and raise."""
        sock = self._connect()
        parser = ResponseParser()
        started = time.perf_counter()
        results: list[Timed] = []
        try:
            sock.sendall(payload)
            while len(results) < expected:
                data = sock.recv(READ_BYTES)
                if not data:
                    raise ConnectionError(f"server closed after {len(results)} of {expected} responses")
                now_ms = (time.perf_counter() - started) * 1000.0
                results += [Timed(response, now_ms) for response in parser.feed(data)]
        except BaseException:
            self.close()
            raise
        if len(results) > expected or parser.buffer or not results[-1].response.keep_alive:
            self.close()  # a surplus byte or a "Connection: close" ends the connection: start clean next time
        return results
