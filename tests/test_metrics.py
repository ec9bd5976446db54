"""Metrics scraped over HTTP after a known sequence of commands, uses and checks."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from ulid import ULID

from contracts import TokenUsed, format_timestamp, from_millis
from contracts.token_format import mint
from tests.conftest import ADMIN, wait_for
from tests.streams import send_raw
from token_service.app import Service, build_service
from token_service.client import TokenClient
from token_service.gateway import Verifier
from token_service.keys import Keys
from token_service.redis.embedded import free_port
from token_service.settings import ServiceSettings
from workers.audit import build_worker
from workers.settings import AuditSettings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(port: int) -> Samples:
    """Every sample of ``/metrics`` on 127.0.0.1:port, keyed by name and sorted labels."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series was never touched."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def served(settings: ServiceSettings) -> AsyncIterator[Service]:
    """The command handler with its health and metrics endpoints on a free port."""
    built = build_service(settings.model_copy(update={"http_port": 0}))
    await built.app.start()
    yield built
    await built.app.stop()


async def test_command_metrics_count_each_outcome_exactly(
    served: Service, redis: Redis, settings: ServiceSettings, keys: Keys
) -> None:
    async with (
        TokenClient(redis, actor=ADMIN, key_prefix=settings.key_prefix) as admin,
        TokenClient(redis, actor="mallory", key_prefix=settings.key_prefix) as stranger,
    ):
        first = await admin.generate("ci", ["entities:read"], command_id="g-1")
        assert first.ok
        assert first.token is not None
        assert (await admin.generate("ci-2", ["reports:write"])).ok
        assert (await admin.generate("ci", ["entities:read"], command_id="g-1")).duplicate
        assert not (await admin.generate("typo", ["entitys:read"])).ok
        assert not (await stranger.generate("sneaky", ["entities:read"])).ok
        assert (await admin.revoke(first.token.id)).ok
        assert not (await admin.revoke(first.token.id)).ok
    await send_raw(redis, keys.commands, data="not json at all")
    await wait_for(lambda: _dead_letters(redis, keys, 1))

    assert served.health is not None
    samples = await scrape(served.health.port)
    handled = "tokens_commands_handled_total"
    assert value(samples, handled, type="GenerateToken", outcome="ok") == 2
    assert value(samples, handled, type="GenerateToken", outcome="duplicate") == 1
    assert value(samples, handled, type="GenerateToken", outcome="invalid") == 1
    assert value(samples, handled, type="GenerateToken", outcome="forbidden") == 1
    assert value(samples, handled, type="RevokeToken", outcome="ok") == 1
    assert value(samples, handled, type="RevokeToken", outcome="conflict") == 1
    assert value(samples, handled, type="unknown", outcome="dead_letter") == 1
    assert value(samples, "tokens_dead_letters_total", stream=keys.commands) == 1
    latency = "tokens_command_handling_seconds_count"
    assert value(samples, latency, type="GenerateToken") == 5
    assert value(samples, latency, type="RevokeToken") == 2
    group = {"stream": keys.commands, "group": "token-service"}
    assert value(samples, "tokens_group_pending", **group) == 0
    assert value(samples, "tokens_group_lag", **group) == 0


async def _dead_letters(redis: Redis, keys: Keys, count: int) -> bool:
    return int(await redis.xlen(keys.dead_letter)) >= count


async def test_audit_metrics_count_folds_repeats_skips_and_the_newest_use(
    service: Service, client: TokenClient, redis: Redis, settings: ServiceSettings, keys: Keys
) -> None:
    reply = await client.generate("gw", ["entities:read"])
    assert reply.token is not None
    newest_ms = int(time.time() * 1000) - 5_000
    # Uses older than the token are not folded: give it a twin created a minute ago.
    record = cast(dict[Any, Any], await redis.hgetall(keys.token(reply.token.id)))
    token_id, unknown_id = (str(ULID.from_timestamp((newest_ms - 60_000) / 1000)) for _ in "ab")
    await redis.hset(keys.token(token_id), mapping={**record, "id": token_id})
    events = [
        TokenUsed(
            actor="gw-1",
            token_id=token_id,
            used_at=from_millis(newest_ms - n * 1000),
            count=n + 1,
            gateway="gw-1",
        )
        for n in range(4)
    ]
    unknown = events[0].model_copy(update={"token_id": unknown_id, "event_id": "e-unknown"})
    for event in [*events, events[0], unknown]:  # a repeated event id, an unknown token
        await redis.xadd(keys.usage, {"data": event.to_json()})
    audit = AuditSettings(
        redis_url=settings.redis_url,
        key_prefix=settings.key_prefix,
        consumer_name="audit-metrics",
        poll_ms=20,
        http_port=0,
    )
    worker = build_worker(audit)
    await worker.app.start()
    try:
        await wait_for(lambda: _usage_settled(redis, keys))
        await wait_for(lambda: _audited(redis, keys, reply.token.id if reply.token else ""))
        assert worker.health is not None
        samples = await scrape(worker.health.port)
    finally:
        await worker.app.stop()
    assert value(samples, "tokens_usage_events_folded_total") == 4
    assert value(samples, "tokens_usage_events_repeated_total") == 1
    assert value(samples, "tokens_usage_events_skipped_total") == 1
    assert value(samples, "tokens_audit_events_folded_total") == 1  # its TokenCreated
    age = value(samples, "tokens_newest_folded_use_age_seconds")
    assert 5 <= age < 60, format_timestamp(from_millis(newest_ms))
    for stream, group in ((keys.usage, "audit-usage"), (keys.events, "audit")):
        assert value(samples, "tokens_group_pending", stream=stream, group=group) == 0
        assert value(samples, "tokens_group_lag", stream=stream, group=group) == 0


async def _usage_settled(redis: Redis, keys: Keys) -> bool:
    groups = {g["name"]: g for g in await redis.xinfo_groups(keys.usage)}
    group = groups.get("audit-usage")
    return group is not None and group["lag"] == 0 and group["pending"] == 0


async def _audited(redis: Redis, keys: Keys, token_id: str) -> bool:
    return int(await redis.llen(f"{keys.prefix}:token:{token_id}:audit")) >= 1


async def test_verifier_metrics_live_in_a_registry_the_host_can_serve(
    service: Service, client: TokenClient, redis: Redis, settings: ServiceSettings
) -> None:
    good = await client.generate("reader", ["entities:read"])
    assert good.secret is not None
    verifier = Verifier(redis, key_prefix=settings.key_prefix)
    secret = good.secret
    unknown = mint()  # well formed, never issued
    outcomes = [
        await verifier.verify(secret, "entities:read"),
        await verifier.verify(secret, "entities:read"),
        await verifier.verify(secret, "entities:write"),
        await verifier.verify("tok_short", "entities:read"),
        await verifier.verify(unknown, "entities:read"),
    ]
    assert [o.ok for o in outcomes] == [True, True, False, False, False]

    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=verifier.registry)
    try:
        samples = await scrape(port)
    finally:
        server.shutdown()
        thread.join(5)
    checks = "tokens_verifier_checks_total"
    assert value(samples, checks, outcome="accepted") == 2
    assert value(samples, checks, outcome="insufficient_scope") == 1
    assert value(samples, checks, outcome="malformed") == 1
    assert value(samples, checks, outcome="unknown") == 1
    assert value(samples, checks, outcome="unavailable") == 0
    assert value(samples, "tokens_verifier_check_seconds_count") == 5
    bucket = "tokens_verifier_check_seconds_bucket"
    assert value(samples, bucket, le="+Inf") == 5
    cumulative = [value(samples, bucket, le=le) for le in ("0.0001", "0.001", "0.01", "1.0")]
    assert cumulative == sorted(cumulative)
    assert not math.isnan(value(samples, "tokens_verifier_check_seconds_sum"))
