"""The verdict cache never serves what it may have missed: faults as features.

Each test has a redis-server of its own, to kill, restart, flush or freeze.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.caching import (
    SCOPE,
    cached_verifier,
    eventually,
    reads,
    secret_key,
    store_token,
    tracking_client_ids,
)
from token_service.gateway import Accepted, CacheOptions, Rejected, RejectReason, Verifier
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis

UNKNOWN = Rejected(RejectReason.UNKNOWN)
KEYS = Keys("cache-faults")


@pytest.fixture
def own_server() -> Iterator[EmbeddedRedis]:
    """A redis-server for this test alone."""
    server = EmbeddedRedis.start()
    assert server.kind == "redis-server"
    yield server
    server.stop()


@pytest.fixture
async def own_redis(own_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    """A client on it that gives up at once when it is away."""
    client = Redis.from_url(own_server.url, decode_responses=True, socket_timeout=1)
    yield client
    await client.aclose()


def _live(verifier: Verifier) -> bool:
    return verifier.cache is not None and verifier.cache.live


async def test_a_killed_tracking_connection_bypasses_the_cache_until_tracking_is_back(
    own_redis: Redis,
) -> None:
    token = await store_token(own_redis, KEYS)  # before tracking: its write is no invalidation
    other = await store_token(own_redis, KEYS)
    verifier = await cached_verifier(own_redis, KEYS)
    assert isinstance(await verifier.verify(token, SCOPE), Accepted)
    [tracking] = await tracking_client_ids(own_redis)
    await own_redis.client_kill_filter(_id=str(tracking))
    await eventually(lambda: not _live(verifier))
    assert verifier.cache is not None
    assert len(verifier.cache) == 0

    # While nobody tells the gateway about writes, every check asks Redis.
    await own_redis.delete(secret_key(KEYS, token))
    before = await reads(own_redis)
    assert await verifier.verify(token, SCOPE) == UNKNOWN
    assert await reads(own_redis) == before + 1

    await eventually(lambda: _live(verifier))
    assert len(await tracking_client_ids(own_redis)) == 1
    assert verifier.cache.losses == 1
    assert isinstance(await verifier.verify(other, SCOPE), Accepted)
    before = await reads(own_redis)
    assert isinstance(await verifier.verify(other, SCOPE), Accepted)
    assert await verifier.verify(token, SCOPE) == UNKNOWN
    assert await verifier.verify(token, SCOPE) == UNKNOWN
    assert await reads(own_redis) == before + 1  # kept again, the absent key too
    await verifier.close()


async def test_a_redis_restart_empties_the_cache(
    own_server: EmbeddedRedis, own_redis: Redis
) -> None:
    token = await store_token(own_redis, KEYS)  # before tracking: its write is no invalidation
    verifier = await cached_verifier(own_redis, KEYS)
    assert isinstance(await verifier.verify(token, SCOPE), Accepted)
    own_server.kill()
    await eventually(lambda: not _live(verifier))
    assert await verifier.verify(token, SCOPE) == Rejected(RejectReason.UNAVAILABLE)
    own_server.launch()  # without persistence: it comes back empty
    assert await verifier.start(10)
    assert await verifier.verify(token, SCOPE) == UNKNOWN
    await verifier.close()


@pytest.mark.parametrize("flush", ["FLUSHALL", "FLUSHDB"])
async def test_a_flush_empties_the_cache(own_redis: Redis, flush: str) -> None:
    token = await store_token(own_redis, KEYS)  # before tracking: its write is no invalidation
    verifier = await cached_verifier(own_redis, KEYS)
    assert verifier.cache is not None
    assert isinstance(await verifier.verify(token, SCOPE), Accepted)
    assert len(verifier.cache) == 1
    await (own_redis.flushall() if flush == "FLUSHALL" else own_redis.flushdb())
    await eventually(lambda: verifier.cache is not None and verifier.cache.flushes == 1)
    assert len(verifier.cache) == 0
    assert verifier.cache.live  # tracking itself goes on
    assert await verifier.verify(token, SCOPE) == UNKNOWN
    await verifier.close()


async def test_a_silent_redis_is_noticed_by_the_heartbeat(
    own_server: EmbeddedRedis, own_redis: Redis
) -> None:
    """A frozen Redis closes no connection: only the unanswered PING tells."""
    token = await store_token(own_redis, KEYS)  # before tracking: its write is no invalidation
    verifier = await cached_verifier(own_redis, KEYS, CacheOptions(heartbeat_s=0.1))
    assert isinstance(await verifier.verify(token, SCOPE), Accepted)
    own_server.pause()
    try:
        started = asyncio.get_running_loop().time()
        await eventually(lambda: not _live(verifier), limit_s=2)
        assert asyncio.get_running_loop().time() - started < 0.5
        assert verifier.cache is not None
        assert len(verifier.cache) == 0
    finally:
        own_server.resume()
    assert await verifier.start(10)
    assert isinstance(await verifier.verify(token, SCOPE), Accepted)
    await verifier.close()


@pytest.mark.parametrize("write", ["DEL", "FLUSHALL"])
async def test_a_read_in_flight_when_its_key_changes_is_not_kept(
    own_redis: Redis, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    token = await store_token(own_redis, KEYS)  # before tracking: its write is no invalidation
    verifier = await cached_verifier(own_redis, KEYS)
    assert verifier.cache is not None
    lookups: Any = verifier._lookups
    send = lookups._send
    answered, go_on = asyncio.Event(), asyncio.Event()

    async def slow_send(keys: list[str], *, with_ttl: bool) -> list[Any]:
        replies: list[Any] = await send(keys, with_ttl=with_ttl)
        answered.set()
        await go_on.wait()  # Redis has answered; the answer is not handed back yet
        return replies

    monkeypatch.setattr(lookups, "_send", slow_send)
    check = asyncio.create_task(verifier.verify(token, SCOPE))
    await answered.wait()
    seen = verifier.cache.invalidations + verifier.cache.flushes
    if write == "DEL":
        await own_redis.delete(secret_key(KEYS, token))
    else:
        await own_redis.flushall()
    await eventually(
        lambda: (
            verifier.cache is not None
            and verifier.cache.invalidations + verifier.cache.flushes > seen
        )
    )
    go_on.set()
    assert isinstance(await check, Accepted)  # it answers what it read, before the write
    monkeypatch.undo()
    assert len(verifier.cache) == 0
    before = await reads(own_redis)
    assert await verifier.verify(token, SCOPE) == UNKNOWN  # not the kept read
    assert await reads(own_redis) == before + 1
    await verifier.close()


async def test_the_maximum_entry_age_bounds_staleness_when_invalidations_are_lost(
    own_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await store_token(own_redis, KEYS)  # before tracking: its write is no invalidation
    verifier = await cached_verifier(own_redis, KEYS, CacheOptions(max_age_s=0.3))
    assert verifier.cache is not None
    assert isinstance(await verifier.verify(token, SCOPE), Accepted)
    # Everything else fails: the invalidations never reach the cache.
    monkeypatch.setattr(verifier.cache, "invalidate", lambda keys: None)
    await own_redis.hset(secret_key(KEYS, token), "scopes", "reports:read")
    await asyncio.sleep(0.05)
    assert isinstance(await verifier.verify(token, SCOPE), Accepted)  # stale, for now
    await asyncio.sleep(0.3)
    verdict = await verifier.verify(token, SCOPE)
    assert isinstance(verdict, Rejected)
    assert verdict.reason is RejectReason.INSUFFICIENT_SCOPE
    await verifier.close()
