"""The fix to copy works on a loop that sends values into coroutines: hypercorn's trio worker, on 127.0.0.1.

FreshContextMiddleware's C-level steps only send None (asyncio's way), so under trio it answers no request; the
snapshot middleware picks its Python-level driver when no asyncio loop runs, and keeps every guarantee there:
each request sees its own values (in a later step and in a worker thread too), none of the previous request's on
the same connection, and the app's import-time values.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.load import servers
from scripts.load.process import free_port
from scripts.load.settings import HOST

ROOT = Path(__file__).resolve().parents[1]
APP = "tests.trio_apps.snapshot_app:app"
START_TIMEOUT_S = 30.0
REQUESTS = 12


@pytest.fixture(scope="module")
def trio_server() -> Iterator[int]:
    pytest.importorskip("trio")
    port = free_port()
    command = servers.HYPERCORN_TRIO.command(APP, HOST, port)
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"hypercorn's trio worker did not start (exit {process.poll()})")
                time.sleep(0.1)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def request_bytes(index: int) -> bytes:
    user = f"X-User-ID: u{index}\r\n" if index % 2 == 0 else ""  # every other request anonymous
    return f"GET /items/{index} HTTP/1.1\r\nHost: {HOST}\r\nX-Request-ID: r{index}\r\n{user}\r\n".encode()


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, dict]]:
    """`count` responses (status, JSON body) read off one connection, in order (Content-Length framed)."""
    buffer, found = b"", []
    sock.settimeout(10)
    while len(found) < count:
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536) or pytest.fail("the server closed the connection")
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        while len(buffer) < length:
            buffer += sock.recv(65536) or pytest.fail("the server closed the connection mid-body")
        body, buffer = buffer[:length], buffer[length:]
        found.append((int(lines[0].split()[1]), json.loads(body)))
    return found


def expected(index: int) -> dict:
    return {
        "request_id": f"r{index}",
        "user_id": f"u{index}" if index % 2 == 0 else None,
        "in_thread": f"r{index}",
        "region": "eu-west",
        "third": "0.333333",
    }


def test_keep_alive_requests_see_their_own_values_and_the_startup_ones(trio_server: int) -> None:
    with socket.create_connection((HOST, trio_server)) as sock:
        for index in range(REQUESTS):
            sock.sendall(request_bytes(index))
            assert read_responses(sock, 1) == [(200, expected(index))]


def test_pipelined_requests_see_their_own_values_and_the_startup_ones(trio_server: int) -> None:
    with socket.create_connection((HOST, trio_server)) as sock:
        sock.sendall(b"".join(request_bytes(index) for index in range(REQUESTS)))
        assert read_responses(sock, REQUESTS) == [(200, expected(index)) for index in range(REQUESTS)]


def test_the_asyncio_only_driver_is_not_the_one_chosen_under_trio() -> None:
    """The choice itself: under trio no asyncio loop runs, so the any-loop driver is taken."""
    trio = pytest.importorskip("trio")
    from apps import contextvar_snapshot

    async def choose() -> object:
        return contextvar_snapshot.driver_for_this_loop()

    assert trio.run(choose) is contextvar_snapshot.in_context_any_loop
    assert sys.modules["apps.contextvar_snapshot"].in_context is not contextvar_snapshot.in_context_any_loop
