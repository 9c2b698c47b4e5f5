"""The pipelining client for the HTTP contract's requests: ctxbench.pipeline's raw client plus `exchange(specs)`."""

from __future__ import annotations

from apps.harness.traffic import RequestSpec
from ctxbench.pipeline import (  # noqa: F401 - the suite imports them from here
    CONNECT_TIMEOUT_S,
    IO_TIMEOUT_S,
    READ_BYTES,
    ProtocolError,
    Response,
    ResponseParser,
    Timed,
)
from ctxbench.pipeline import PipelineClient as RawPipelineClient


def encode(spec: RequestSpec, host: str) -> bytes:
    """One request of the contract as HTTP/1.1 bytes, with a Content-Length for POST bodies."""
    lines = [f"{spec.method} {spec.url} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in spec.headers().items()]
    body = spec.body() if spec.method == "POST" else b""
    if spec.method == "POST":
        lines += ["Content-Type: application/octet-stream", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class PipelineClient(RawPipelineClient):
    """One keep-alive connection that also sends the contract's requests (`exchange`)."""

    def exchange(self, specs: list[RequestSpec]) -> list[Timed]:
        """Send every request of the contract before reading (see `exchange_raw`)."""
        return self.exchange_raw(b"".join(encode(spec, self.host_header) for spec in specs), len(specs))
