"""The auth endpoint's HTTP server on raw sockets, and ``python -m authz`` as a process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from authz.http import HttpServer
from authz.replies import Reply
from tests.authz import ROUTES
from tests.conftest import wait_for
from token_service.redis.embedded import EmbeddedRedis, free_port


async def _echo(method: str, target: str, headers: Mapping[str, str]) -> Reply:
    """Says which request it saw; a slow one for /slow, to show replies keep their order."""
    if target == "/slow":
        await asyncio.sleep(0.2)
    seen = f"{method} {target} {headers.get('x-seen', '-')}"
    return Reply(200, "accepted", (("X-Seen", seen),), seen.encode())


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    running = HttpServer(_echo, "127.0.0.1", 0, idle_timeout_s=0.3, headers=frozenset({"x-seen"}))
    await running.start()
    yield running
    await running.stop()


async def _exchange(server: HttpServer, raw: bytes, *, limit_s: float = 5.0) -> bytes:
    """Send ``raw``, read until the server closes or stays quiet for a moment."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(raw)
    await writer.drain()
    received = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 0.5 if received else limit_s)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        pass
    writer.close()
    return received


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(
    server: HttpServer,
) -> None:
    raw = (
        b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Seen: 1\r\n\r\n"
        b"GET /fast HTTP/1.1\r\nHost: x\r\nx-seen: 2\r\nContent-Length: 5\r\n\r\nhello"
        b"HEAD /head HTTP/1.1\r\nHost: x\r\nX-Other: dropped\r\n\r\n"
    )
    answer = await _exchange(server, raw)
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    first, second, third = answer.split(b"HTTP/1.1 200 OK")[1:]
    assert b"X-Seen: GET /slow 1" in first
    assert b"X-Seen: GET /fast 2" in second
    assert b"X-Seen: HEAD /head -" in third
    assert third.endswith(b"\r\n\r\n")  # HEAD: no body
    assert b"Connection: keep-alive" in third


async def test_http_1_0_and_connection_close_are_answered_then_closed(
    server: HttpServer,
) -> None:
    for raw in (
        b"GET /a HTTP/1.0\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
    ):
        answer = await _exchange(server, raw)
        assert answer.count(b"HTTP/1.1 200 OK") == 1
        assert b"Connection: close" in answer


async def test_oversized_heads_and_garbage_are_refused_and_the_connection_closed(
    server: HttpServer,
) -> None:
    huge_header = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    assert (await _exchange(server, huge_header)).startswith(b"HTTP/1.1 431 ")
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n"
    assert (await _exchange(server, many)).startswith(b"HTTP/1.1 431 ")
    long_url = b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n"
    assert (await _exchange(server, long_url)).startswith(b"HTTP/1.1 431 ")
    assert (await _exchange(server, b"NOT HTTP AT ALL\r\n\r\n")).startswith(b"HTTP/1.1 400 ")


async def test_an_idle_or_dribbling_connection_is_closed(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a head never finished
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
    await wait_for(lambda: _no_connections(server))


async def _no_connections(server: HttpServer) -> bool:
    return not server.connections


async def test_a_reply_that_could_split_the_response_becomes_a_500() -> None:
    async def splitting(_m: str, _t: str, _h: Mapping[str, str]) -> Reply:
        return Reply(200, "accepted", (("X-Token-Id", "a\r\nSet-Cookie: x=1"),))

    running = HttpServer(splitting, "127.0.0.1", 0)
    await running.start()
    try:
        answer = await _exchange(running, b"GET / HTTP/1.1\r\n\r\n")
    finally:
        await running.stop()
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert b"Set-Cookie" not in answer


def _run_authz(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "authz"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _base_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHZ_", "REDIS_"))}
    return {**env, "REDIS_URL": redis_url, "AUTHZ_ROUTES_FILE": str(ROUTES), **extra}


def test_python_m_authz_serves_checks_health_and_metrics_and_stops_on_sigterm(
    redis_server: EmbeddedRedis,
) -> None:
    port, health = free_port(), free_port()
    env = _base_env(redis_server.url, AUTHZ_PORT=str(port), AUTHZ_HTTP_PORT=str(health))
    process = _run_authz(env)
    try:
        _until_ready(f"http://127.0.0.1:{health}/readyz")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/check",
            headers={"X-Original-URI": "/api/entities", "X-Original-Method": "GET"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)  # noqa: S310 (loopback)
        assert refused.value.code == 401
        metrics_url = f"http://127.0.0.1:{health}/metrics"
        with urllib.request.urlopen(metrics_url, timeout=5) as metrics:
            assert b'tokens_authz_decisions_total{outcome="no_token"} 1.0' in metrics.read()
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert b"authz_listening" in output
    assert b"authz_stopped" in output


def _until_ready(url: str) -> None:
    for _ in range(200):
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"{url} never answered 200")


def test_python_m_authz_refuses_to_start_with_a_broken_route_table(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text('[[route]]\nprefix = "/api"\nscope = "nonsense"\n')
    env = _base_env(redis_server.url, AUTHZ_ROUTES_FILE=str(routes), AUTHZ_PORT="0")
    done = subprocess.run(
        [sys.executable, "-m", "authz"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "route 1: scope" in done.stderr
