"""Repeats of sequenced usage reports are recognized per reporter, in bounded memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from contracts import TokenUsed, utc_now
from tests.conftest import wait_for
from tests.test_audit import _audit_settings
from token_service.app import Service
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.settings import ServiceSettings
from workers.audit import Worker, build_worker
from workers.folds import REPORTER_WINDOW


@pytest.fixture
async def worker(service: Service, settings: ServiceSettings) -> AsyncIterator[Worker]:
    """The audit worker, started once the service has loaded the functions library."""
    built = build_worker(_audit_settings(settings, "window-1"))
    await built.app.start()
    yield built
    await built.app.stop()


@pytest.fixture
async def token_id(client: TokenClient) -> str:
    reply = await client.generate("windowed", ["entities:read"])
    assert reply.token is not None
    return reply.token.id


def _report(token_id: str, sequence: int, count: int = 1, reporter: str = "gw-a-1") -> bytes:
    return TokenUsed(
        token_id=token_id,
        actor="gw",
        used_at=utc_now(),
        count=count,
        gateway="gw",
        reporter=reporter,
        sequence=sequence,
    ).to_json()


async def _uses(redis: Redis, keys: Keys, token_id: str) -> int:
    daily = await redis.hgetall(keys.token_daily(token_id))
    return sum(int(n) for n in daily.values())


async def _send_and_count(
    redis: Redis, keys: Keys, token_id: str, reports: list[bytes], expected: int
) -> None:
    for report in reports:
        await redis.xadd(keys.usage, {"data": report})

    async def counted() -> bool:
        groups = [g for g in await redis.xinfo_groups(keys.usage) if g["name"] == "audit-usage"]
        return bool(groups) and groups[0]["lag"] == 0 and groups[0]["pending"] == 0

    await wait_for(counted, 10)
    assert await _uses(redis, keys, token_id) == expected


async def test_a_resent_report_counts_once_even_under_another_event_id(
    worker: Worker, redis: Redis, keys: Keys, token_id: str
) -> None:
    first = _report(token_id, 1, count=3)
    again = _report(token_id, 1, count=3)  # a new event id, the same reporter and sequence
    await _send_and_count(redis, keys, token_id, [first, first, again], 3)


async def test_reports_out_of_order_each_count_once(
    worker: Worker, redis: Redis, keys: Keys, token_id: str
) -> None:
    order = [5, 3, 4, 1, 2, 3, 5, 9, 7, 8, 6, 9]
    await _send_and_count(redis, keys, token_id, [_report(token_id, n) for n in order], 9)


async def test_a_report_lost_by_no_one_counts_however_late_within_the_window(
    worker: Worker, redis: Redis, keys: Keys, token_id: str
) -> None:
    newer = [_report(token_id, n) for n in range(2, 2_001)]
    await _send_and_count(redis, keys, token_id, newer, 1_999)
    await _send_and_count(redis, keys, token_id, [_report(token_id, 1)], 2_000)
    assert REPORTER_WINDOW > 2_000


async def test_memory_grows_with_reporters_not_with_reports(
    worker: Worker, redis: Redis, keys: Keys, token_id: str
) -> None:
    reports = [_report(token_id, n, reporter=f"gw-{n % 3}") for n in range(1, 3_001)]
    await _send_and_count(redis, keys, token_id, reports, 3_000)
    remembered = [key async for key in redis.scan_iter(f"{keys.prefix}:reporter:*")]
    assert len(remembered) == 2 * 3  # a high mark and a ring of bits per reporter
    # Seen sets hold lifecycle event ids only (here: the one TokenCreated), no report's.
    seen = [key async for key in redis.scan_iter(f"{keys.prefix}:seen:*")]
    assert sum([await redis.scard(key) for key in seen]) <= 1
    for key in remembered:
        assert await redis.memory_usage(key) or REPORTER_WINDOW // 8 + 256 >= 0
