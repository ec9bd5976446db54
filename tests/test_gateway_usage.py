"""The gateway's usage reports against real Redis: exact counts, one report per token and
interval, bounded memory, and nothing lost or hung while Redis is away."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tests.gateways import issued_secret, unreachable_redis, verifier_for
from tests.streams import stream_data
from token_service.client import TokenClient
from token_service.gateway import Accepted
from token_service.gateway.usage import UsageReporter
from token_service.keys import Keys
from token_service.settings import ServiceSettings


async def test_usage_counts_are_exact_under_many_concurrent_checks(
    client: TokenClient, redis: Redis, settings: ServiceSettings, keys: Keys
) -> None:
    secrets = [await issued_secret(client, f"gw-use-{n}", ["entities:read"]) for n in range(3)]
    reporter = UsageReporter(redis, gateway="gw-1", key_prefix=settings.key_prefix, interval_s=0.05)
    verifier = verifier_for(redis, settings, reporter=reporter)
    await reporter.start()
    accepted: Counter[str] = Counter()

    async def caller(n: int) -> None:
        for i in range(60):
            verdict = await verifier.verify(secrets[(n + i) % 3], "entities:read")
            assert isinstance(verdict, Accepted)
            accepted[verdict.token_id] += 1

    await asyncio.gather(*(caller(n) for n in range(50)))
    await reporter.close()
    reported: Counter[str] = Counter()
    for event in await stream_data(redis, keys.usage):
        assert event["type"] == "TokenUsed"
        assert event["gateway"] == "gw-1"
        reported[event["token_id"]] += event["count"]
    assert reported == accepted
    assert sum(accepted.values()) == 50 * 60


async def test_one_report_per_token_per_interval_with_the_latest_use(
    redis: Redis, settings: ServiceSettings, keys: Keys
) -> None:
    reporter = UsageReporter(redis, gateway="gw-2", key_prefix=settings.key_prefix)
    for used_ms in (1_000, 3_000, 2_000):
        reporter.record("token-a", used_ms)
    reporter.record("token-b", 5_000)
    await reporter.flush()
    events = {e["token_id"]: e for e in await stream_data(redis, keys.usage)}
    assert set(events) == {"token-a", "token-b"}
    assert events["token-a"]["count"] == 3
    assert events["token-a"]["used_at"] == "1970-01-01T00:00:03.000Z"


async def test_reporter_memory_is_bounded_and_redis_outage_loses_no_count(
    settings: ServiceSettings, redis: Redis, keys: Keys
) -> None:
    nowhere = unreachable_redis()
    reporter = UsageReporter(nowhere, gateway="gw-3", key_prefix=settings.key_prefix, max_tokens=5)
    started = time.monotonic()
    for n in range(8):
        reporter.record(f"token-{n}", 1_000)
    assert time.monotonic() - started < 0.05
    assert reporter.dropped_uses == 3
    await reporter.flush()  # Redis is away: kept for the next report
    reporter.redis = redis
    await reporter.flush()
    assert len(await stream_data(redis, keys.usage)) == 5
    await nowhere.aclose()


async def test_reporter_close_does_not_hang_on_a_stalled_redis(settings: ServiceSettings) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1_000_000)
        await asyncio.sleep(30)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    stalled = Redis(port=server.sockets[0].getsockname()[1], retry=Retry(NoBackoff(), 0))
    reporter = UsageReporter(stalled, gateway="gw-4", timeout_s=0.3)
    await reporter.start()
    reporter.record("token-a", 1_000)
    await asyncio.wait_for(reporter.close(), 3)
    assert reporter._unsent  # kept for a later report, not lost
    server.close()
    await stalled.aclose()
