"""An HTTP/2 client that multiplexes many streams of different identities on one connection and judges each response.

Every stream carries identities of a client id of its own (apps.harness.origin), so a leaked value traced to
"another client" is another stream's: the question HTTP/2 asks is whether a stream starts in another stream's context.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import httpx

from apps.harness import traffic
from apps.harness.origin import new_client_id
from apps.harness.traffic import RequestSpec
from loadtests.validation import assess

TIMEOUT_S = 30.0  # a stalled stream must end the exchange, never hang a run
HTTP2 = "HTTP/2"


@dataclass(frozen=True, slots=True)
class Outcome:
    spec: RequestSpec
    status: int
    http_version: str
    names: list[str]
    origins: frozenset[str]


def streams(count: int, kinds: tuple[str, ...] = traffic.KINDS, anonymous_every: int = 2) -> list[RequestSpec]:
    """`count` requests, each of a fresh client id; every `anonymous_every`-th anonymous (where a stale user shows)."""
    return [
        traffic.request(kinds[seq % len(kinds)], new_client_id(), seq, anonymous=seq % anonymous_every == 1)
        for seq in range(count)
    ]


def client(base_url: str, context: ssl.SSLContext | None) -> httpx.AsyncClient:
    """One connection's worth of client: h2c with prior knowledge on http://, h2 by ALPN on https://."""
    tls = base_url.startswith("https://")
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)  # every stream on one connection
    return httpx.AsyncClient(
        base_url=base_url,
        http1=tls,  # plain: HTTP/2 only, so httpx speaks it with prior knowledge
        http2=True,
        verify=context if tls and context is not None else True,
        limits=limits,
        timeout=TIMEOUT_S,
    )


async def _one(session: httpx.AsyncClient, spec: RequestSpec) -> Outcome:
    body = spec.body() if spec.method == "POST" else None
    response = await session.request(spec.method, spec.url, headers=spec.headers(), content=body)
    names, origins = assess(spec, response.status_code, response.headers, response.content)
    return Outcome(spec, response.status_code, response.http_version, names, origins)


async def exchange(base_url: str, rounds: list[list[RequestSpec]], context: ssl.SSLContext | None) -> list[Outcome]:
    """Each round's streams all in flight at once on the one connection; the rounds one after another."""
    outcomes: list[Outcome] = []
    async with client(base_url, context) as session:
        for specs in rounds:
            outcomes += await asyncio.gather(*(_one(session, spec) for spec in specs))
    return outcomes


def run(base_url: str, rounds: list[list[RequestSpec]], context: ssl.SSLContext | None = None) -> list[Outcome]:
    return asyncio.run(exchange(base_url, rounds, context))
