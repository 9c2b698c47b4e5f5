"""Load tests: the pipelining client and parser, and short bounded headless locust runs against a real uvicorn."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time

import psutil
import pytest

from apps.harness import traffic
from apps.harness.checker import LEAK
from loadtests import scenarios
from loadtests.pipeline import ProtocolError, ResponseParser, encode
from loadtests.validation import NOT_JSON, judge, status_failure
from scripts.common.environment import ROOT
from scripts.common.lock import exclusive_run
from scripts.load import bounded_run
from scripts.load import servers as serverconfig
from scripts.load.process import free_port, serve
from scripts.load.settings import SERVER_CPUS

RUN_S = 2.0  # measured seconds of each headless run: enough requests to see a leak, short enough for the suite
WARMUP_S = 0.5
USERS = 4
LOCK_WAIT_S = 240.0  # another benchmark may hold the machine lock for a while


def ok_response(body: bytes = b'{"a": 1}', extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body


# --- the raw HTTP/1.1 client ----------------------------------------------------------------------
def test_encode_writes_headers_and_a_sized_body() -> None:
    spec = traffic.request(traffic.POST, "t", 7, anonymous=True, body_size=10)
    raw = encode(spec, "127.0.0.1:1")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /items/item7 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n")
    assert b"X-Request-ID: t-r7" in head and b"X-User-ID" not in head
    assert b"Content-Length: 10" in head and body == b"x" * 10


def test_parser_takes_pipelined_responses_fed_one_byte_at_a_time() -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nX-Audit: a\r\n\r\n"
    chunked += b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"
    wire = ok_response(b"first") + chunked + ok_response(b"", "connection: close\r\n")
    parser = ResponseParser()
    responses = []
    for byte in wire:
        responses += parser.feed(bytes([byte]))
    assert [(r.status, r.body, r.keep_alive) for r in responses] == [
        (200, b"first", True),
        (200, b"abcde", True),
        (200, b"", False),
    ]
    assert responses[1].headers["x-audit"] == "a" and not parser.buffer


def test_parser_keeps_an_incomplete_response_and_rejects_garbage() -> None:
    parser = ResponseParser()
    assert parser.feed(ok_response(b"12345")[:-2]) == []
    assert [r.body for r in parser.feed(b"45")] == [b"12345"]
    with pytest.raises(ProtocolError):
        ResponseParser().feed(b"SMTP ready\r\n\r\n")


def test_judge_names_status_and_body_problems() -> None:
    spec = traffic.request(traffic.GET, "t", 1, anonymous=False)
    assert judge(spec, 500, {}, b"{}") == [status_failure(500)]
    assert judge(spec, 200, {}, b"not json") == [NOT_JSON]


def test_ids_are_unique_and_kinds_cycle() -> None:
    ids = scenarios.IdSource(anonymous_share=0.0)
    specs = [ids.next(traffic.KINDS, 100) for _ in range(6)]
    assert len({spec.sent.request_id for spec in specs}) == 6
    assert [spec.kind for spec in specs] == list(traffic.KINDS) * 2
    assert all(spec.sent.user_id for spec in specs)


# --- short headless runs on a real uvicorn (no timing asserted) ----------------------------------------
def headless(variant: str, scenario: str, config: serverconfig.ServerConfig = serverconfig.DEFAULT) -> dict:
    spec = bounded_run.RunSpec(variant, scenario, USERS, RUN_S, WARMUP_S, config, tag="test")
    with exclusive_run():
        result = bounded_run.execute(spec)
    assert result["processes"]["started"] and result["processes"]["left_behind"] == []
    assert not any(psutil.pid_exists(pid) and bounded_run._alive(pid) for pid in result["processes"]["started"])
    assert result["requests"] > 0
    # the exact record and locust's own JSON agree on every request and failure
    totals = result["failures_total"]
    assert result["locust"]["totals"] == {"requests": totals["requests"], "failures": totals["failed_requests"]}
    return result


def test_a_recommended_variant_passes_plain_traffic() -> None:
    result = headless("contextvar_asgi", scenarios.GET)
    assert result["failures_total"]["failures"] == {}
    assert result["locust"]["exit_code"] == 0


def test_the_negative_control_is_caught_leaking() -> None:
    result = headless("global_state", scenarios.GET)
    assert result["failures_total"][LEAK] > 0
    assert result["locust"]["exit_code"] not in (0, None)


def test_pipelining_catches_the_entry_leak_that_reset_contextvars_prevents() -> None:
    leaky = headless("contextvar_asgi", scenarios.PIPELINE)
    names = leaky["failures_total"]["failures"]
    assert names and all(name.startswith("entry.") and name.endswith(":leak") for name in names)
    assert leaky["locust"]["exit_code"] not in (0, None)
    fresh = headless("contextvar_asgi", scenarios.PIPELINE, serverconfig.UVLOOP_HTTPTOOLS_RESET)
    found = fresh["failures_total"]["failures"]
    # no leak; the empty Context hides the app's startup values: tallied as dropped, no locust failure
    assert found and all(name.endswith(":dropped") for name in found), found
    assert fresh["failures_total"]["dropped"] == sum(found.values())
    assert fresh["locust"]["exit_code"] == 0


def test_a_server_is_stopped_by_pid_when_the_run_fails() -> None:
    with exclusive_run(), pytest.raises(RuntimeError, match="boom"):
        with serve(bounded_run.registry.get("baseline"), serverconfig.DEFAULT, free_port(), SERVER_CPUS) as server:
            pids = list(server.seen)
            raise RuntimeError("boom")
    assert pids and not any(psutil.pid_exists(pid) and bounded_run._alive(pid) for pid in pids)


def _command_line(process: psutil.Process) -> str:
    """A child's command line, or '' for one that ended meanwhile."""
    try:
        return " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return ""


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_the_server_and_the_generator(stop: signal.Signals) -> None:
    command = [sys.executable, "-m", "scripts.cli", "load", "--variant", "baseline", "--duration", "60"]
    orchestrator = psutil.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + LOCK_WAIT_S  # it may first wait for the machine lock
        while time.monotonic() < deadline and not any("locust" in _command_line(p) for p in seen.values()):
            with contextlib.suppress(psutil.Error):
                seen.update({child.pid: child for child in orchestrator.children(recursive=True)})
            time.sleep(0.05)
        assert any("uvicorn" in _command_line(p) for p in seen.values()), "the run never started"
        orchestrator.send_signal(stop)
        assert orchestrator.wait(timeout=30) != 0
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
        left = [proc for proc in seen.values() if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE]
        for proc in left:  # a failing run must not leave its server behind for the next test
            with contextlib.suppress(psutil.Error):
                proc.kill()
    assert not left, f"left running: {[proc.pid for proc in left]}"


def test_parser_skips_interim_answers_and_takes_bodyless_ones() -> None:
    interim, empty = b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"
    wire = interim + ok_response(b"ok") + empty + ok_response(b"x")
    assert [(r.status, r.body) for r in ResponseParser().feed(wire)] == [(200, b"ok"), (204, b""), (200, b"x")]
