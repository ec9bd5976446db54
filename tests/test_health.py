"""Liveness and readiness of real processes: alive at once, ready only once Redis is."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tests.conftest import ADMIN
from token_service.client import TokenClient
from token_service.ops.health import HealthServer
from token_service.redis.embedded import EmbeddedRedis, free_port

_TIMEOUT = aiohttp.ClientTimeout(total=2)


async def _status(session: aiohttp.ClientSession, port: int, path: str) -> int | None:
    try:
        async with session.get(f"http://127.0.0.1:{port}{path}", timeout=_TIMEOUT) as response:
            return response.status
    except aiohttp.ClientError:
        return None


async def _until(session: aiohttp.ClientSession, port: int, path: str, status: int) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    while await _status(session, port, path) != status:
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{path} on {port} never answered {status}")
        await asyncio.sleep(0.1)


def _spawn(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT
        )


@pytest.mark.slow
async def test_processes_are_ready_only_once_redis_answers(tmp_path: Path) -> None:
    redis_port, service_port, worker_port = free_port(), free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TOKENS_", "AUDIT_"))},
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TOKENS_KEY_PREFIX": "health",
        "TOKENS_ADMINS": ADMIN,
        "TOKENS_HTTP_PORT": str(service_port),
        "AUDIT_HTTP_PORT": str(worker_port),
        "TOKENS_POLL_MS": "20",
        "TOKENS_TRUST_SHARED_STREAM": "true",
    }
    processes = [
        _spawn("token_service", env, tmp_path / "service.log"),
        _spawn("workers.audit", env, tmp_path / "worker.log"),
    ]
    server = EmbeddedRedis(
        redis_port, "redis-server", Path(tempfile.mkdtemp(prefix="token-service-redis-"))
    )
    try:
        async with aiohttp.ClientSession() as session:
            for port in (service_port, worker_port):
                await _until(session, port, "/livez", 200)
                # Alive, but Redis is not there yet: not ready, and it stays up waiting.
                assert await _status(session, port, "/readyz") == 503
            await asyncio.sleep(1.0)
            assert all(process.poll() is None for process in processes)
            for port in (service_port, worker_port):
                assert await _status(session, port, "/readyz") == 503

            server.launch()
            for port in (service_port, worker_port):
                await _until(session, port, "/readyz", 200)

        redis = Redis.from_url(server.url, decode_responses=True)
        try:
            async with TokenClient(redis, actor=ADMIN, key_prefix="health", timeout=10) as c:
                assert (await c.generate("after-wait", ["entities:read"])).ok
        finally:
            await redis.aclose()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        server.stop()


async def test_readiness_names_what_is_missing(redis: Redis) -> None:
    stream = f"health-{free_port()}:commands"
    health = HealthServer(CollectorRegistry(), "127.0.0.1", 0)
    health.watch(redis, [(stream, "token-service")])
    missing = await health.readiness()
    assert not missing.ready
    assert missing.reason == f"group token-service of {stream} does not exist"

    await redis.xgroup_create(stream, "token-service", id="0", mkstream=True)
    assert (await health.readiness()).ready

    unreachable = HealthServer(CollectorRegistry(), "127.0.0.1", 0)
    unreachable.watch(
        Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)), []
    )
    down = await unreachable.readiness()
    assert not down.ready
    assert down.reason.startswith("redis unreachable")
