"""``TokenClient`` across a Redis restart: its reply listener subscribes again by itself,
so the same client gets answers once Redis is back, and it still closes promptly while
Redis is away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts import CommandReply
from tests.conftest import ADMIN
from tests.faults import durable_server
from tests.processes import service_process
from token_service.app import Service
from token_service.client import ReplyTimeout, TokenClient
from token_service.redis.embedded import EmbeddedRedis
from token_service.settings import ServiceSettings

READ = "entities:read"


@pytest.fixture
def durable_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own, on its append-only file, that it may kill."""
    yield from durable_server()


async def _generate_until_answered(client: TokenClient, name: str, limit_s: float) -> CommandReply:
    """What a careful caller does after an outage: retry the same command until answered."""
    command_id = f"{ADMIN}-{name}"
    deadline = time.monotonic() + limit_s
    while True:
        try:
            return await client.generate(name, [READ], command_id=command_id)
        except (ReplyTimeout, RedisError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_client_answers_again_after_redis_restarts(
    durable_redis: EmbeddedRedis, settings: ServiceSettings, tmp_path: Path
) -> None:
    on_durable = settings.model_copy(update={"redis_url": durable_redis.url})
    with service_process(on_durable, tmp_path / "service.log"):
        redis = Redis.from_url(durable_redis.url)
        try:
            async with TokenClient(
                redis, actor=ADMIN, key_prefix=on_durable.key_prefix, timeout=2.0
            ) as client:
                first = await _generate_until_answered(client, "before-restart", 30)
                assert first.ok

                durable_redis.kill()
                await asyncio.sleep(1.0)  # long enough for the listener to notice
                durable_redis.launch()
                relaunched = time.monotonic()

                second = await _generate_until_answered(client, "after-restart", 30)
                answered_after_s = time.monotonic() - relaunched
                print(f"client-reconnect answered_after_s={answered_after_s:.2f}")
                assert second.ok
                assert second.secret is not None
                assert client.resubscribed >= 1
        finally:
            await redis.aclose()


async def test_client_closes_promptly_while_redis_is_away(durable_redis: EmbeddedRedis) -> None:
    redis = Redis.from_url(durable_redis.url)
    try:
        client = TokenClient(redis, actor=ADMIN)
        await client.__aenter__()
        durable_redis.kill()
        await asyncio.sleep(0.5)  # the listener is now backing off against a dead Redis
        await asyncio.wait_for(client.__aexit__(None, None, None), 3.0)
    finally:
        await redis.aclose()


async def test_a_thousand_concurrent_calls_share_one_client_with_its_default_pool(
    service: Service, settings: ServiceSettings
) -> None:
    shared = Redis.from_url(settings.redis_url or "")  # redis-py's default pool
    try:
        async with TokenClient(
            shared, actor=ADMIN, key_prefix=settings.key_prefix, timeout=60
        ) as client:
            replies = await asyncio.gather(
                *(client.generate(f"load-{n}", ["entities:read"]) for n in range(1_000)),
                return_exceptions=True,
            )
    finally:
        await shared.aclose()
    failures = [r for r in replies if isinstance(r, BaseException)]
    assert failures == []
    assert all(reply.ok for reply in replies if not isinstance(reply, BaseException))
