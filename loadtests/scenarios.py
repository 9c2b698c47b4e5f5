"""What each load scenario sends (locust-independent): request kinds, unique ids, pacing for fixed-rate runs."""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field

from apps.harness import traffic
from apps.harness.origin import new_client_id
from apps.harness.traffic import RequestSpec

GET, POST, STREAM, PIPELINE, MIX = "get", "post", "stream", "pipeline", "mix"
SCENARIOS = (GET, POST, STREAM, PIPELINE, MIX)
DEFAULT_SCENARIO = MIX
# Every scenario at once in one locust process: each user keeps one scenario (and its own connection) for the whole
# run, and every count is kept per scenario. The leak hunt uses it so one server and one generator start per variant
# and server configuration, not one per scenario: a leak lives on one connection, so the users do not mix evidence.
EACH = "each"
HTTP_SCENARIOS = (GET, POST, STREAM, MIX)  # the ContractUser's share of EACH; PipelineUser takes PIPELINE
HTTP_USERS_PER_PIPELINE_USER = len(HTTP_SCENARIOS)  # so every scenario of EACH gets the same number of users
# kinds each transport cycles through in a scenario; a scenario absent from a table does not use that transport
HTTP_KINDS = {GET: (traffic.GET,), POST: (traffic.POST,), STREAM: (traffic.STREAM,), MIX: traffic.KINDS, EACH: ()}
PIPELINE_KINDS = {PIPELINE: traffic.KINDS, MIX: traffic.KINDS, EACH: traffic.KINDS}
PIPELINE_DEPTH = 4  # requests written back to back before the first response is read
HTTP_POST_BYTES = traffic.LARGE_BODY_BYTES  # large enough that the server pauses reading mid-body
PIPELINE_POST_BYTES = traffic.SMALL_BODY_BYTES  # small: the point of a batch is many requests in one write

NAMES = {traffic.GET: "GET /items/[id]", traffic.POST: "POST /items/[id]", traffic.STREAM: "GET /stream/[id]"}


def request_name(kind: str, pipelined: bool = False, scenario: str | None = None) -> str:
    """The locust stats name: one row per kind (and transport, and scenario under EACH), not one per unique URL."""
    name = f"pipelined {NAMES[kind]}" if pipelined else NAMES[kind]
    return f"[{scenario}] {name}" if scenario else name


def user_scenario(chosen: str, transport_scenarios: tuple[str, ...], index: int) -> str:
    """The scenario one user keeps: the chosen one, or under EACH its transport's scenarios in turn."""
    return transport_scenarios[index % len(transport_scenarios)] if chosen == EACH else chosen


@dataclass
class IdSource:
    """Fresh, unique identities for one simulated user; a seeded share of them anonymous."""

    anonymous_share: float = traffic.ANONYMOUS_SHARE
    prefix: str = field(default_factory=new_client_id)  # this client's id: every identity it sends carries it
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
