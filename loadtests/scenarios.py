"""What each load scenario sends (locust-independent): request kinds, unique ids, pacing for fixed-rate runs."""

from __future__ import annotations

import itertools
import random
import time
import uuid
from dataclasses import dataclass, field

from apps import traffic
from apps.traffic import RequestSpec

GET, POST, STREAM, PIPELINE, MIX = "get", "post", "stream", "pipeline", "mix"
SCENARIOS = (GET, POST, STREAM, PIPELINE, MIX)
DEFAULT_SCENARIO = MIX
# kinds each transport cycles through in a scenario; a scenario absent from a table does not use that transport
HTTP_KINDS = {GET: (traffic.GET,), POST: (traffic.POST,), STREAM: (traffic.STREAM,), MIX: traffic.KINDS}
PIPELINE_KINDS = {PIPELINE: traffic.KINDS, MIX: traffic.KINDS}
PIPELINE_DEPTH = 4  # requests written back to back before the first response is read
HTTP_POST_BYTES = traffic.LARGE_BODY_BYTES  # large enough that the server pauses reading mid-body
PIPELINE_POST_BYTES = traffic.SMALL_BODY_BYTES  # small: the point of a batch is many requests in one write

NAMES = {traffic.GET: "GET /items/[id]", traffic.POST: "POST /items/[id]", traffic.STREAM: "GET /stream/[id]"}


def request_name(kind: str, pipelined: bool = False) -> str:
    """The locust stats name: one row per kind (and transport), not one per unique URL."""
    return f"pipelined {NAMES[kind]}" if pipelined else NAMES[kind]


@dataclass
class IdSource:
    """Fresh, unique identities for one simulated user; a seeded share of them anonymous."""

    anonymous_share: float = traffic.ANONYMOUS_SHARE
    prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    counter: itertools.count = field(default_factory=itertools.count)
    rng: random.Random = field(default_factory=random.Random)

    def next(self, kinds: tuple[str, ...], body_bytes: int) -> RequestSpec:
        seq = next(self.counter)
        anonymous = self.rng.random() < self.anonymous_share
        return traffic.request(kinds[seq % len(kinds)], self.prefix, seq, anonymous, body_bytes)


@dataclass
class Pacer:
    """Fixed-rate schedule for one user (0 = closed loop, no wait); a late user does not wait, it catches up."""

    rate_per_s: float
    next_at: float | None = None

    def wait(self) -> float:
        if self.rate_per_s <= 0:
            return 0.0
        now = time.monotonic()
        if self.next_at is None:
            self.next_at = now + random.random() / self.rate_per_s  # spread users over the first interval
        delay = max(0.0, self.next_at - now)
        self.next_at += 1.0 / self.rate_per_s
        return delay
