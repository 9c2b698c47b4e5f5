"""HTTP/2: servers serving h2c and TLS themselves, nginx terminating HTTP/2 before a server; many streams of different
identities multiplexed on one connection, every response judged, nothing left running."""

from __future__ import annotations

import pytest

from apps.harness import origin
from loadtests import multiplex
from scripts.common.lock import exclusive_run
from scripts.load import h2
from scripts.load import servers as serverconfig
from scripts.load.process import in_group

CLEAN_VARIANT = "contextvar_snapshot"  # all ok on every server: any failure is the transport's doing
SAMPLES = [
    *(target for target in h2.TARGETS if target.front.is_direct),
    next(t for t in h2.TARGETS if not t.front.is_direct and t.config == serverconfig.UVLOOP_HTTPTOOLS),
]


@pytest.mark.parametrize("target", SAMPLES, ids=lambda target: target.label)
def test_streams_multiplexed_on_one_connection_are_served_over_http2_and_judged(target: h2.Target) -> None:
    if target.front.missing():
        pytest.skip(target.front.missing())
    with exclusive_run():
        result = h2.cell(CLEAN_VARIANT, target, streams=16, rounds=3)
    assert result["requests"] == 48
    assert result["http_versions"] == {"HTTP/2": 48}, "every stream over HTTP/2"
    assert result["failures"] == {} and result["cross_stream"] == 0
    processes = result["processes"]
    assert processes["started"] and processes["left_behind"] == []
    assert not in_group(processes["started"][0])
    assert len(processes["started"]) >= (1 if target.front.is_direct else 2), "the server and the front"
    if target.transport == h2.TLS and target.front.is_direct:
        assert {"--certfile", "--ssl-certificate"} & set(result["server"]["command"])


def test_each_stream_carries_its_own_client_id() -> None:
    specs = multiplex.streams(8)
    ids = {origin.client_of(spec.sent.request_id) for spec in specs}
    assert len(ids) == len(specs) and None not in ids
    assert sum(spec.sent.user_id is None for spec in specs) == 4
