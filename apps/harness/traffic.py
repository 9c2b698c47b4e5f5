"""What clients send: request kinds, unique identities, the anonymous share (shared by tests, load and benchmarks)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from apps.harness.checker import Sent
from apps.harness.contract import (
    FAIL_QUERY,
    HEALTH_PATH,
    ITEM_PATH,
    REQUEST_ID_HEADER,
    STREAM_PATH,
    TENANT_ID_HEADER,
    USER_ID_HEADER,
)

GET, POST, STREAM, HEALTH = "get", "post", "stream", "health"
KINDS = (GET, POST, STREAM)
ANONYMOUS_SHARE = 1 / 3  # share of requests sent without X-User-ID
SMALL_BODY_BYTES = 1024  # POST body in the default mix
LARGE_BODY_BYTES = 256 * 1024  # POST body of the large-body load scenario: bigger than a server's read buffer
TRACEPARENT_HEADER = "traceparent"  # W3C Trace Context: a client that is itself traced sends its span as the parent
TRACEPARENT_SHARE = 1 / 3  # share of requests that carry a traceparent (a fresh trace id each)


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request of the contract, as data: enough to send it over HTTP or drive it in-process."""

    kind: str
    item_id: str
    sent: Sent
    body_size: int = 0
    fail: bool = False
    extra_headers: tuple[tuple[str, str], ...] = field(default=())
    traceparent: str | None = None  # `00-<trace id>-<parent span id>-01`, or None: the client sends no trace

    @property
    def method(self) -> str:
        return "POST" if self.kind == POST else "GET"

    @property
    def path(self) -> str:
        if self.kind == HEALTH:
            return HEALTH_PATH
        template = STREAM_PATH if self.kind == STREAM else ITEM_PATH
        return template.format(item_id=self.item_id)

    @property
    def query(self) -> str:
        return FAIL_QUERY if self.fail else ""

    @property
    def url(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    def headers(self) -> dict[str, str]:
        sent = {
            REQUEST_ID_HEADER: self.sent.request_id,
            USER_ID_HEADER: self.sent.user_id,
            TENANT_ID_HEADER: self.sent.tenant_id,
        }
        if self.traceparent is not None:
            sent[TRACEPARENT_HEADER] = self.traceparent
        return {name: value for name, value in sent.items() if value is not None} | dict(self.extra_headers)

    def body(self) -> bytes:
        return b"x" * self.body_size


def identity(prefix: str, seq: int, anonymous: bool) -> Sent:
    """Unique values for every field, so that any value seen by the wrong request can be told apart."""
    return Sent(f"{prefix}-r{seq}", None if anonymous else f"{prefix}-u{seq}", f"{prefix}-t{seq}")


def traceparent(prefix: str, seq: int) -> str:
    """A fresh W3C traceparent for this request: trace and parent span ids derived from its unique identity."""
    digest = hashlib.blake2b(f"{prefix}-{seq}".encode(), digest_size=24).hexdigest()
    return f"00-{digest[:32]}-{digest[32:48]}-01"


def carries_traceparent(prefix: str, seq: int, share: float = TRACEPARENT_SHARE) -> bool:
    """Whether this request sends a traceparent: decided by its identity, so every client (tests, load, benchmarks)
    picks the same share without a random generator of its own (which would shift the anonymous choices)."""
    digest = hashlib.blake2b(f"traced:{prefix}-{seq}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") < share * 2**32


def request(
    kind: str,
    prefix: str,
    seq: int,
    anonymous: bool,
    body_size: int = SMALL_BODY_BYTES,
    traced: bool | None = None,
) -> RequestSpec:
    """One request with unique identity; `traced` None: a traceparent for TRACEPARENT_SHARE of requests."""
    traced = carries_traceparent(prefix, seq) if traced is None else traced
    return RequestSpec(
        kind,
        f"item{seq}",
        identity(prefix, seq, anonymous),
        body_size if kind == POST else 0,
        traceparent=traceparent(prefix, seq) if traced else None,
    )


def mix(
    count: int,
    prefix: str = "mix",
    seed: int = 0,
    kinds: tuple[str, ...] = KINDS,
    anonymous_share: float = ANONYMOUS_SHARE,
) -> list[RequestSpec]:
    """`count` requests cycling through `kinds`, a seeded `anonymous_share` of them anonymous."""
    rng = random.Random(seed)
    return [request(kinds[seq % len(kinds)], prefix, seq, rng.random() < anonymous_share) for seq in range(count)]
