"""Hostile input on the wire, against a real server of every kind: after each case the server still serves correctly.

Each case writes raw bytes no well-behaved client sends (a malformed request line, CR/LF inside a header value,
oversized, repeated or thousands of headers, a body shorter or longer than its Content-Length, a chunked body that
never ends, a client that stalls or disconnects mid-headers, mid-body or mid-stream). Then a correct request on a new
connection, and on the same one when the server kept it open after a complete answer, must get a 200 judged clean by
the leak checker: its own context, nothing of the hostile request's. A 500 is a failure anywhere; so is a server that
does not answer a complete (if malformed) request, or that stops serving others while one client stalls. A 400/431 or
a closed connection are both fine answers to malformed input: which one each server picks is printed (`-s`).

The variant is `contextvar_snapshot`: correct on every server kind, also on one keep-alive connection (each request
starts in a copy of the startup Context), so any failure of the follow-up requests is the hostile input's doing,
not a known leak.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from apps.harness import registry, traffic
from apps.harness.traffic import RequestSpec
from loadtests.pipeline import ProtocolError, Response, ResponseParser, encode
from loadtests.validation import judge
from scripts.common.lock import exclusive_run
from scripts.load import servers
from scripts.load.process import Managed, free_port, serve
from scripts.load.settings import HOST, SERVER_CPUS

VARIANT = "contextvar_snapshot"
ANSWER_TIMEOUT_S = 3.0  # a complete request, however malformed, is answered (or the connection closed) by then
STALL_S = 0.3  # how long a stalling client holds its connection open before the check that others are served
SEQ = itertools.count()


@dataclass
class Outcome:
    """What the server did with one hostile input, and the connection when it is still usable."""

    answer: str  # e.g. "400 then close", "200 keep-alive", "closed", "no answer (waits)"
    failures: list[str] = field(default_factory=list)  # judged problems with the hostile exchange itself
    sock: socket.socket | None = None  # open, in a clean state: a follow-up request may use it


def connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=ANSWER_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0): the abrupt disconnect a crashed client or a proxy gives."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def read_responses(sock: socket.socket, wanted: int = 1) -> tuple[list[Response], str]:
    """Up to `wanted` responses; also how the reading ended: "" (got them), "closed", "timeout" or "garbage"."""
    parser, got = ResponseParser(), []
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while len(got) < wanted:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return got, "timeout"
        except ConnectionError:
            return got, "closed"
        if not data:
            return got, "closed"
        try:
            got += parser.feed(data)
        except ProtocolError:
            return got, "garbage"
    return got, ""


def spec(kind: str = traffic.GET, prefix: str = "hostile") -> RequestSpec:
    return traffic.request(kind, f"{prefix}{next(SEQ)}", next(SEQ), anonymous=False, body_size=64)


def head(request: RequestSpec, port: int, extra: list[str] | None = None, length: int | None = None) -> bytes:
    """The request's head with extra header lines; `length` overrides the Content-Length of a POST."""
    lines = encode(request, f"{HOST}:{port}").split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    if length is not None:
        lines = [line for line in lines if not line.lower().startswith("content-length")]
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join([*lines, *(extra or [])]) + "\r\n\r\n").encode("latin-1")


def judged(request: RequestSpec, responses: list[Response]) -> list[str]:
    """A 200 to a request that carried valid identities must be clean; any 500 is a failure."""
    found = []
    for response in responses:
        if response.status >= 500:
            found.append(f"status:{response.status}")
        elif response.status == 200:
            found += judge(request, response.status, response.headers, response.body)
    return found


def describe(responses: list[Response], ended: str) -> str:
    statuses = " ".join(str(r.status) for r in responses)
    open_after = responses and responses[-1].keep_alive and not ended
    tail = {"": " keep-alive" if open_after else " then close", "closed": " then close", "timeout": " (waits)"}
    if not responses:
        return {"closed": "closed", "timeout": "no answer (waits)", "garbage": "garbage"}[ended]
    return statuses + tail.get(ended, f" ({ended})")


def answered(sock: socket.socket, request: RequestSpec | None, wanted: int = 1, may_wait: bool = False) -> Outcome:
    """Read the answer to a complete input: responses then open, responses then closed, or closed; never a 500."""
    responses, ended = read_responses(sock, wanted)
    if request is not None:
        failures = judged(request, responses)
    else:
        failures = [f"status:{r.status}" for r in responses if r.status >= 500]
    if ended == "timeout" and not responses and not may_wait:
        failures.append("hang: a complete request got no answer and the connection stayed open")
    # The same connection is reused where the protocol allows: after a complete answer from the app (200, or its JSON
    # 400), kept alive. After the server's own 4xx to unparsable input it may close without saying so (daphne does).
    from_app = bool(responses) and responses[-1].headers.get("content-type", "").startswith("application/json")
    reusable = len(responses) == wanted and not ended and responses[-1].keep_alive and from_app
    if not reusable:
        sock.close()
    return Outcome(describe(responses, ended), failures, sock if reusable else None)


def send_all(sock: socket.socket, data: bytes) -> None:
    """Send what the server will take: a server may answer and close before it has read everything (daphne does, on
    thousands of headers), which is a fine answer; what it said is read next."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def send_then(port: int, data: bytes, request: RequestSpec | None = None, wanted: int = 1) -> Outcome:
    sock = connect(port)
    send_all(sock, data)
    return answered(sock, request, wanted)


# --- the cases: each (port) -> Outcome ------------------------------------------------------------------
def malformed_request_line(port: int) -> Outcome:
    return send_then(port, b"GET /items/x HTTP/1.1 trailing garbage\x00\r\nHost: x\r\n\r\n")


def not_http_at_all(port: int) -> Outcome:
    return send_then(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello, this is not HTTP\r\n\r\n")


def unknown_http_version(port: int) -> Outcome:
    return send_then(port, b"GET /items/x HTTP/9.9\r\nHost: x\r\n\r\n")


def bare_cr_in_header_value(port: int) -> Outcome:
    request = spec()
    return send_then(port, head(request, port, ["X-Tenant-ID: a\rX-Injected: b"]))


def bare_lf_in_header_value(port: int) -> Outcome:
    request = spec()
    return send_then(port, head(request, port, ["X-Debug: a\nX-User-ID: injected"]), request)


def obsolete_line_folding(port: int) -> Outcome:
    request = spec()
    return send_then(port, head(request, port, ["X-Debug: a", " folded-continuation"]), request)


def oversized_identity_header(port: int) -> Outcome:
    request = spec()
    return send_then(port, head(request, port, [f"X-User-ID: {'u' * 100_000}"]), request)


def repeated_identity_header(port: int) -> Outcome:
    request = spec()
    return send_then(port, head(request, port, ["X-Request-ID: someone-else"]), request)


def thousands_of_headers(port: int) -> Outcome:
    request = spec()
    return send_then(port, head(request, port, [f"X-Junk-{n}: v{n}" for n in range(5000)]), request)


def body_longer_than_content_length(port: int) -> Outcome:
    """The declared body, then bytes beyond it: the server must read them as the next (malformed) request."""
    request = spec(traffic.POST)
    data = head(request, port, length=64) + b"x" * 64 + b"EXTRA BYTES BEYOND THE BODY\r\n\r\n"
    sock = connect(port)
    send_all(sock, data)
    return answered(sock, request, wanted=2, may_wait=False)


@dataclass
class Stalled:
    """A connection this test holds open mid-request while the server is checked with other connections."""

    sock: socket.socket
    answer: str = "held open"


def body_shorter_than_content_length(port: int) -> Stalled:
    request = spec(traffic.POST)
    sock = connect(port)
    sock.sendall(head(request, port, length=1000) + b"x" * 10)
    return Stalled(sock)


def stops_mid_headers(port: int) -> Stalled:
    sock = connect(port)
    sock.sendall(b"GET /items/slow HTTP/1.1\r\nHost: x\r\nX-User-ID: slo")
    return Stalled(sock)


def chunked_body_never_ends(port: int) -> Stalled:
    request = spec(traffic.POST)
    data = head(request, port, ["Transfer-Encoding: chunked"]).replace(b"Content-Length: 64\r\n", b"")
    sock = connect(port)
    sock.sendall(data + b"5\r\nhello\r\n")
    return Stalled(sock)


def disconnects_mid_body(port: int) -> Outcome:
    request = spec(traffic.POST)
    sock = connect(port)
    sock.sendall(head(request, port, length=512 * 1024) + b"x" * 128 * 1024)
    time.sleep(0.05)
    reset(sock)
    return Outcome("reset by the client")


def half_closes_mid_body(port: int) -> Outcome:
    request = spec(traffic.POST)
    sock = connect(port)
    sock.sendall(head(request, port, length=4096) + b"x" * 100)
    sock.shutdown(socket.SHUT_WR)
    outcome = answered(sock, None, may_wait=True)
    if outcome.sock is not None:
        outcome.sock.close()
    return Outcome(f"half-closed by the client: {outcome.answer}", outcome.failures)


def disconnects_mid_stream(port: int) -> Outcome:
    request = spec(traffic.STREAM)
    sock = connect(port)
    sock.sendall(encode(request, f"{HOST}:{port}"))
    sock.recv(16)  # the response has started
    reset(sock)
    return Outcome("reset by the client mid-stream")


CASES: dict[str, Callable[[int], Outcome | Stalled]] = {
    case.__name__: case
    for case in (
        malformed_request_line,
        not_http_at_all,
        unknown_http_version,
        bare_cr_in_header_value,
        bare_lf_in_header_value,
        obsolete_line_folding,
        oversized_identity_header,
        repeated_identity_header,
        thousands_of_headers,
        body_longer_than_content_length,
        body_shorter_than_content_length,
        stops_mid_headers,
        chunked_body_never_ends,
        disconnects_mid_body,
        half_closes_mid_body,
        disconnects_mid_stream,
    )
}
SEEN: dict[str, dict[str, str]] = {}  # server label -> case -> what the server did (printed at the end of a kind)


def follow_up(sock: socket.socket) -> list[str]:
    """A correct request of every kind in turn on this connection; the problems found (empty: all ok)."""
    problems = []
    for kind in traffic.KINDS:
        request = spec(kind, prefix="after")
        sock.sendall(encode(request, "follow-up"))
        responses, ended = read_responses(sock)
        if not responses:
            return [*problems, f"{kind}: no answer ({ended})"]
        response = responses[0]
        problems += [f"{kind}: {name}" for name in judge(request, response.status, response.headers, response.body)]
    return problems


@pytest.fixture(scope="module", params=servers.PER_KIND, ids=lambda c: c.label)
def server(request: pytest.FixtureRequest) -> Iterator[tuple[servers.ServerConfig, int, Managed]]:
    config = request.param
    port = free_port()
    with exclusive_run(), serve(registry.get(VARIANT), config, port, SERVER_CPUS) as managed:
        SEEN[config.label] = {}
        yield config, port, managed
        print(f"\n{config.label}: " + "; ".join(f"{case}: {answer}" for case, answer in SEEN[config.label].items()))


@pytest.mark.parametrize("case", CASES)
def test_after_hostile_input_the_server_still_serves_correctly(
    server: tuple[servers.ServerConfig, int, Managed], case: str
) -> None:
    config, port, managed = server
    outcome = CASES[case](port)
    try:
        # a new connection while any stalled one is still held: one slow client must not block the others
        with connect(port) as fresh:
            new_connection = follow_up(fresh)
        same = follow_up(outcome.sock) if isinstance(outcome, Outcome) and outcome.sock is not None else []
    finally:
        if outcome.sock is not None:
            outcome.sock.close()
    reused = isinstance(outcome, Outcome) and outcome.sock is not None
    SEEN[config.label][case] = outcome.answer + (", connection reused" if reused else "")
    failures = outcome.failures if isinstance(outcome, Outcome) else []
    assert failures == [], f"{config.label} {case}: {outcome.answer}: {failures}"
    assert new_connection == [], f"{config.label} after {case}, new connection: {new_connection}"
    assert same == [], f"{config.label} after {case}, same connection: {same}"
    assert managed.process.poll() is None, f"{config.label} exited after {case}:\n{managed.log_tail()}"
