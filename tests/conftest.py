"""Fixtures: one throwaway redis-server per session, a fresh key prefix per test."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from token_service.app import Service, build_service
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.ops.logs import configure_logging
from token_service.redis.embedded import EmbeddedRedis
from token_service.settings import ServiceSettings

ADMIN = "alice"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """A real redis-server on a free port, never the machine's own on 6379."""
    server = EmbeddedRedis.start()
    assert server.kind == "redis-server", "tests need a real redis-server (see .ci/run)"
    yield server
    server.stop()


@pytest.fixture(scope="session")
def captured_logs() -> io.StringIO:
    """Every log line the tests' in-process services write."""
    sink = io.StringIO()
    configure_logging("INFO", sink)
    return sink


@pytest.fixture
def settings(redis_server: EmbeddedRedis, captured_logs: io.StringIO) -> ServiceSettings:
    """Settings with a key prefix of the test's own, so tests never see each other's keys."""
    return ServiceSettings(
        redis_url=redis_server.url,
        http_port=None,
        key_prefix=f"t{uuid.uuid4().hex[:10]}",
        admins=[ADMIN],
        resources=["entities", "reports"],
        consumer_name=f"test-{uuid.uuid4().hex[:6]}",
        claim_idle_ms=500,
        poll_ms=20,
        trust_shared_stream=True,
    )


@pytest.fixture
def keys(settings: ServiceSettings) -> Keys:
    """The test's key names."""
    return Keys(settings.key_prefix)


@pytest.fixture
async def redis(settings: ServiceSettings) -> AsyncIterator[Redis]:
    """A client on the test server that decodes replies to str."""
    client = Redis.from_url(settings.redis_url or "", decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def service(settings: ServiceSettings) -> AsyncIterator[Service]:
    """The command handler, running in this test's event loop."""
    built = build_service(settings)
    await built.app.start()
    yield built
    await built.app.stop()
    await built.store.redis.aclose()


@pytest.fixture
async def client(
    service: Service, redis: Redis, settings: ServiceSettings
) -> AsyncIterator[TokenClient]:
    """An administrator's client, connected to the running service."""
    async with TokenClient(redis, actor=ADMIN, key_prefix=settings.key_prefix, timeout=5) as c:
        yield c


async def wait_for(predicate: object, limit_s: float = 5.0) -> None:
    """Poll an async predicate until it holds, failing the test after ``limit_s``."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        if await predicate():  # type: ignore[operator]
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.02)
