"""The audit worker: last use moves only forward, each event counts once, bad entries park."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import cast

import orjson
import pytest
from redis.asyncio import Redis

from contracts import TokenUsed, utc_now
from tests.conftest import wait_for
from tests.streams import stream_data
from token_service.app import build_service
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.redis.store import TokenStore
from token_service.settings import ServiceSettings
from workers.audit import USAGE_GROUP, Worker, build_worker
from workers.settings import AuditSettings


def _audit_settings(settings: ServiceSettings, name: str) -> AuditSettings:
    return AuditSettings(
        redis_url=settings.redis_url,
        http_port=None,
        key_prefix=settings.key_prefix,
        consumer_name=name,
        poll_ms=20,
        claim_idle_ms=500,
        max_deliveries=2,
    )


@pytest.fixture
async def worker(settings: ServiceSettings) -> AsyncIterator[Worker]:
    """One audit worker, running in this test's event loop."""
    built = build_worker(_audit_settings(settings, "audit-1"))
    await built.app.start()
    yield built
    await built.app.stop()


def _used(token_id: str, used_at: datetime, count: int) -> bytes:
    return TokenUsed(
        token_id=token_id, actor="gw", used_at=used_at, count=count, gateway="gw"
    ).to_json()


async def _folded(redis: Redis, keys: Keys) -> bool:
    # Delivered first, then nothing pending: in that order, or a batch read in between
    # would slip through.
    if not await _all_read(redis, keys):
        return False
    pending = await redis.xpending(keys.usage, USAGE_GROUP)
    return int(pending["pending"]) == 0


async def _daily_total(redis: Redis, keys: Keys, token_id: str, expected: int) -> bool:
    daily = await redis.hgetall(keys.token_daily(token_id))
    return sum(int(v) for v in daily.values()) >= expected


async def _all_read(redis: Redis, keys: Keys) -> bool:
    # Everything written has been handed to the group once it delivered the newest id.
    newest = cast(list[tuple[str, object]], await redis.xrevrange(keys.usage, count=1))
    groups = await redis.xinfo_groups(keys.usage)
    (group,) = [g for g in groups if g["name"] == USAGE_GROUP]
    return bool(newest) and bool(group["last-delivered-id"] == newest[0][0])


async def test_last_use_moves_only_forward_and_each_event_counts_once(
    client: TokenClient, worker: Worker, redis: Redis, keys: Keys
) -> None:
    created = await client.generate("audited", ["entities:read"])
    assert created.token is not None
    token_id = created.token.id
    await asyncio.sleep(0.01)
    now = utc_now()
    newest = _used(token_id, now, 5)
    # An earlier use, and as early as may be: the token's creation.
    for data in (newest, _used(token_id, created.token.created_at, 2), newest):
        await redis.xadd(keys.usage, {"data": data})
    await wait_for(lambda: _folded(redis, keys))
    await wait_for(lambda: _daily_total(redis, keys, token_id, 7))
    await asyncio.sleep(0.2)  # a duplicate counted late would show now
    record = await redis.hgetall(keys.token(token_id))
    assert record["last_used_ms"] == str(int(now.timestamp() * 1000))
    daily = await redis.hgetall(keys.token_daily(token_id))
    assert sum(int(v) for v in daily.values()) == 7
    view = await TokenStore(redis, keys, 1000).get(token_id)
    assert view is not None
    assert view.last_used_at == now


async def test_two_workers_in_one_group_count_each_event_once(
    client: TokenClient, settings: ServiceSettings, redis: Redis, keys: Keys
) -> None:
    created = await client.generate("shared-load", ["entities:read"])
    assert created.token is not None
    token_id = created.token.id
    workers = [build_worker(_audit_settings(settings, f"audit-{n}")) for n in range(2)]
    for each in workers:
        await each.app.start()
    try:
        base = utc_now()
        total = 0
        for chunk in range(20):
            async with redis.pipeline(transaction=False) as pipe:
                for n in range(100):
                    count = 1 + (chunk + n) % 3
                    total += count
                    used = base + timedelta(milliseconds=chunk * 100 + n)
                    data = _used(token_id, used, count)
                    pipe.xadd(keys.usage, {"data": data})
                    if n % 10 == 0:  # a retried report: the same event again
                        pipe.xadd(keys.usage, {"data": data})
                await pipe.execute()
        await wait_for(lambda: _folded(redis, keys), limit_s=20)
        await wait_for(lambda: _daily_total(redis, keys, token_id, total), limit_s=20)
        await asyncio.sleep(0.2)
    finally:
        for each in workers:
            await each.app.stop()
    daily = await redis.hgetall(keys.token_daily(token_id))
    assert sum(int(v) for v in daily.values()) == total
    last = 19 * 100 + 99 + int(base.timestamp() * 1000)
    assert await redis.hget(keys.token(token_id), "last_used_ms") == str(last)


async def test_malformed_usage_entry_is_dead_lettered_and_the_stream_goes_on(
    client: TokenClient, worker: Worker, redis: Redis, keys: Keys
) -> None:
    created = await client.generate("after-bad", ["entities:read"])
    assert created.token is not None
    await redis.xadd(keys.usage, {"data": b"{not json"})
    await redis.xadd(keys.usage, {"data": orjson.dumps({"type": "TokenUsed", "count": -1})})
    await redis.xadd(keys.usage, {"data": _used(created.token.id, utc_now(), 4)})
    await wait_for(lambda: _folded(redis, keys))
    letters = await stream_data(redis, keys.dead_letter)
    assert [letter["stream"] for letter in letters] == [keys.usage, keys.usage]
    assert all(letter["reason"].startswith("not a valid event") for letter in letters)
    daily = await redis.hgetall(keys.token_daily(created.token.id))
    assert sum(int(v) for v in daily.values()) == 4


async def test_lifecycle_events_make_each_tokens_trail(
    client: TokenClient, worker: Worker, redis: Redis, keys: Keys
) -> None:
    created = await client.generate("trail", ["entities:read"])
    assert created.token is not None
    await client.rotate(created.token.id)
    await client.revoke(created.token.id, reason="done")
    trail_key = keys.token_audit(created.token.id)

    async def three() -> bool:
        return bool(await redis.llen(trail_key) == 3)

    await wait_for(three)
    trail = [orjson.loads(item)["type"] for item in await redis.lrange(trail_key, 0, -1)]
    assert trail == ["TokenCreated", "TokenRotated", "TokenRevoked"]


async def test_token_expired_once_with_two_service_processes(
    settings: ServiceSettings, redis: Redis, keys: Keys
) -> None:
    services = [
        build_service(
            settings.model_copy(update={"consumer_name": f"svc-{n}", "expiry_sweep_ms": 20})
        )
        for n in range(2)
    ]
    for service in services:
        await service.app.start()
    try:
        async with TokenClient(redis, actor="alice", key_prefix=settings.key_prefix) as client:
            soon = utc_now() + timedelta(seconds=3)  # 20 generates fit even on a slow machine
            ids = []
            for n in range(20):
                reply = await client.generate(f"brief-{n}", ["entities:read"], expires_at=soon)
                assert reply.token is not None
                ids.append(reply.token.id)

            async def all_expired() -> bool:
                events = await stream_data(redis, keys.events)
                return sum(bool(e["type"] == "TokenExpired") for e in events) >= len(ids)

            await wait_for(all_expired, limit_s=15.0)
            await asyncio.sleep(0.3)  # both sweepers run several more times
    finally:
        for service in services:
            await service.app.stop()
            await service.store.redis.aclose()
    expired = [e for e in await stream_data(redis, keys.events) if e["type"] == "TokenExpired"]
    assert sorted(e["token_id"] for e in expired) == sorted(ids)
    for n, token_id in enumerate(ids):
        assert await redis.hget(keys.token(token_id), "status") == "expired"
        assert not await redis.hexists(keys.token(token_id), "secret")
        assert not await redis.exists(keys.token_grace(token_id))
        assert not await redis.hexists(*keys.name(f"brief-{n}"))
        assert await redis.zscore(keys.expiries, token_id) is None
