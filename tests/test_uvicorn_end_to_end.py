"""A real uvicorn on 127.0.0.1 serving one variant, started as the README says, checked end to end, stopped by PID."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from apps.harness import traffic
from apps.harness.checker import classify, failures
from apps.harness.contract import HEALTH_PATH

START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server() -> str:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "apps.contextvar_asgi:app", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + HEALTH_PATH, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("uvicorn did not answer /healthz")
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)


def test_a_request_end_to_end(server: str) -> None:
    for kind in traffic.KINDS:
        spec = traffic.request(kind, "e2e", 1, anonymous=False)
        response = httpx.request(spec.method, server + spec.url, headers=spec.headers(), content=spec.body())
        assert response.status_code == 200
        assert failures(classify(spec.sent, response.headers, response.json())) == []
