"""Retention: streams stay bounded, and no consumer group ever loses an entry to trimming."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from tests.conftest import ADMIN, wait_for
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.redis.retention import Retention, safe_trim_point, trim
from token_service.settings import ServiceSettings

NOW_MS = 10**13  # far past every entry, so that age alone would trim them all


async def _fill(redis: Redis, stream: str, count: int) -> list[str]:
    return [str(await redis.xadd(stream, {"data": f"{n}"})) for n in range(count)]


async def _read(redis: Redis, stream: str, group: str, count: int) -> list[Any]:
    found: Any = await redis.xreadgroup(group, f"{group}-1", {stream: ">"}, count=count)
    return list(found[0][1]) if found else []


async def _ids(redis: Redis, stream: str) -> list[str]:
    entries: Any = await redis.xrange(stream)
    return [entry_id for entry_id, _ in entries]


async def test_a_slow_group_and_a_stopped_group_never_lose_an_entry(redis: Redis) -> None:
    stream = f"retention:{time.time_ns()}"
    ids = await _fill(redis, stream, 30)
    for group in ("fast", "slow", "stopped"):
        await redis.xgroup_create(stream, group, id="0")
    fast = await _read(redis, stream, "fast", 30)
    await redis.xack(stream, "fast", *[entry_id for entry_id, _ in fast])
    slow = await _read(redis, stream, "slow", 10)  # read, never acknowledged
    await redis.xack(stream, "slow", *[entry_id for entry_id, _ in slow[:5]])
    await trim(redis, Retention(stream, max_age_ms=0), NOW_MS)
    # "stopped" has read nothing: every entry is still there for it.
    assert await _ids(redis, stream) == ids
    await _read(redis, stream, "stopped", 30)
    await redis.xack(stream, "stopped", *ids)
    await trim(redis, Retention(stream, max_age_ms=0), NOW_MS)
    # Now "slow" holds the line: its oldest pending entry and everything after it stay.
    assert await _ids(redis, stream) == ids[5:]
    await redis.xack(stream, "slow", *ids[5:10])
    await trim(redis, Retention(stream, max_age_ms=0), NOW_MS)
    # Delivered up to entry 10 and acknowledged: the undelivered rest stays for "slow".
    assert await _ids(redis, stream) == ids[10:]


async def test_entries_younger_than_the_retention_age_stay_even_when_acknowledged(
    redis: Redis,
) -> None:
    stream = f"retention:{time.time_ns()}"
    ids = await _fill(redis, stream, 10)
    await redis.xgroup_create(stream, "all", id="0")
    await redis.xack(stream, "all", *[e for e, _ in await _read(redis, stream, "all", 10)])
    now_ms = int(ids[-1].partition("-")[0])
    assert await trim(redis, Retention(stream, max_age_ms=60_000), now_ms) == 0
    assert await trim(redis, Retention(stream, max_entries=4), now_ms) == 6
    assert await _ids(redis, stream) == ids[6:]


async def test_a_group_added_later_reads_the_retained_history(redis: Redis) -> None:
    stream = f"retention:{time.time_ns()}"
    ids = await _fill(redis, stream, 20)
    await redis.xgroup_create(stream, "audit", id="0")
    await redis.xack(stream, "audit", *[e for e, _ in await _read(redis, stream, "audit", 20)])
    now_ms = int(ids[-1].partition("-")[0])
    await trim(redis, Retention(stream, max_age_ms=400 * 24 * 3600 * 1000), now_ms)
    await redis.xgroup_create(stream, "dashboard", id="0")
    assert [e for e, _ in await _read(redis, stream, "dashboard", 100)] == ids


async def test_a_stream_without_groups_is_trimmed_by_age_alone(redis: Redis) -> None:
    stream = f"retention:{time.time_ns()}"
    await _fill(redis, stream, 5)
    assert await safe_trim_point(redis, stream) is None
    assert await trim(redis, Retention(stream, max_age_ms=0), NOW_MS) == 5


async def test_the_service_trims_usage_the_audit_worker_folded(
    settings: ServiceSettings, redis: Redis, keys: Keys
) -> None:
    from tests.test_audit import _audit_settings
    from token_service.app import build_service
    from workers.audit import build_worker

    trimming = settings.model_copy(update={"usage_retention_s": 0, "retention_every_s": 0.05})
    service, worker = build_service(trimming), build_worker(_audit_settings(settings, "a-1"))
    await service.app.start()
    await worker.app.start()
    try:
        async with TokenClient(redis, actor=ADMIN, key_prefix=keys.prefix) as client:
            created = await client.generate("trimmed-usage", ["entities:read"])
        assert created.token is not None
        used = {"type": "TokenUsed", "token_id": created.token.id, "gateway": "gw"}
        for _ in range(20):
            await redis.xadd(keys.usage, {"data": _used_json(used)})

        async def usage_trimmed() -> bool:
            return await redis.xlen(keys.usage) == 0

        await wait_for(usage_trimmed, 10)
        assert await redis.hget(keys.token(created.token.id), "last_used_ms") is not None
    finally:
        await worker.app.stop()
        await service.app.stop()
        await service.store.redis.aclose()


def _used_json(fields: dict[str, str]) -> str:
    from contracts import TokenUsed, utc_now

    return (
        TokenUsed(
            token_id=fields["token_id"],
            actor=fields["gateway"],
            used_at=utc_now(),
            count=1,
            gateway=fields["gateway"],
        )
        .to_json()
        .decode()
    )
