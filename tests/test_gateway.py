"""The gateway Verifier against real Redis: every outcome, revocation at once, grace, usage."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from contracts import utc_now
from contracts.token_format import mint
from tests.streams import stream_data
from token_service.client import TokenClient
from token_service.gateway import Accepted, Rejected, RejectReason, Verifier
from token_service.gateway.usage import UsageReporter
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis, free_port
from token_service.settings import ServiceSettings


def _unreachable() -> Redis:
    """A client for a port nothing listens on, that gives up at once rather than retry."""
    return Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))


def _verifier(redis: Redis, settings: ServiceSettings, **options: object) -> Verifier:
    return Verifier(redis, key_prefix=settings.key_prefix, **options)  # type: ignore[arg-type]


async def _secret(client: TokenClient, name: str, scopes: list[str], **extra: object) -> str:
    reply = await client.generate(name, scopes, **extra)  # type: ignore[arg-type]
    assert reply.secret is not None
    return reply.secret


async def test_valid_token_is_accepted_with_its_id_and_scopes(
    client: TokenClient, redis: Redis, settings: ServiceSettings
) -> None:
    reply = await client.generate("gw-ok", ["entities:write"])
    assert reply.secret is not None
    assert reply.token is not None
    verdict = await _verifier(redis, settings).verify(reply.secret, "entities:read")
    assert verdict == Accepted(reply.token.id, ("entities:write",))


async def test_insufficient_scope_is_refused(
    client: TokenClient, redis: Redis, settings: ServiceSettings
) -> None:
    secret = await _secret(client, "gw-read", ["entities:read"])
    verifier = _verifier(redis, settings)
    for wanted in ("entities:write", "reports:read", "nonsense"):
        verdict = await verifier.verify(secret, wanted)
        assert isinstance(verdict, Rejected)
        assert verdict.reason is RejectReason.INSUFFICIENT_SCOPE


async def test_malformed_token_is_refused_without_asking_redis(settings: ServiceSettings) -> None:
    nowhere = _unreachable()
    verifier = _verifier(nowhere, settings)
    token = mint()
    broken = token[:-1] + ("0" if token[-1] != "0" else "1")
    for candidate in (broken, "", "tok_short", token.replace("tok_", "xyz_")):
        assert await verifier.verify(candidate, "entities:read") == Rejected(RejectReason.MALFORMED)
    assert await verifier.verify(token, "entities:read") == Rejected(RejectReason.UNAVAILABLE)
    await nowhere.aclose()


async def test_never_issued_token_is_unknown(redis: Redis, settings: ServiceSettings) -> None:
    verdict = await _verifier(redis, settings).verify(mint(), "entities:read")
    assert verdict == Rejected(RejectReason.UNKNOWN)


async def test_expired_token_is_refused_by_the_clock_before_redis_drops_it(
    client: TokenClient, redis: Redis, settings: ServiceSettings
) -> None:
    expires = utc_now() + timedelta(hours=1)
    secret = await _secret(client, "gw-expiring", ["entities:read"], expires_at=expires)
    later_ms = int(expires.timestamp() * 1000) + 1
    verifier = _verifier(redis, settings, clock_ms=lambda: later_ms)
    verdict = await verifier.verify(secret, "entities:read")
    assert isinstance(verdict, Rejected)
    assert verdict.reason is RejectReason.EXPIRED
    assert isinstance(await _verifier(redis, settings).verify(secret, "entities:read"), Accepted)


async def test_revoked_token_is_rejected_by_the_first_check_after_the_reply(
    client: TokenClient, redis: Redis, settings: ServiceSettings
) -> None:
    reply = await client.generate("gw-revoke", ["entities:read"])
    assert reply.secret is not None
    assert reply.token is not None
    secret = reply.secret
    verifier = _verifier(redis, settings)
    revoked = asyncio.Event()
    after_revoke: list[object] = []
    before_revoke: list[object] = []

    async def gateway() -> None:
        while len(after_revoke) < 50:
            started_after = revoked.is_set()
            verdict = await verifier.verify(secret, "entities:read")
            (after_revoke if started_after else before_revoke).append(verdict)

    looping = asyncio.create_task(gateway())
    await asyncio.sleep(0.05)
    assert (await client.revoke(reply.token.id)).ok
    revoked.set()
    await asyncio.wait_for(looping, 10)
    assert isinstance(before_revoke[0], Accepted)
    assert after_revoke == [Rejected(RejectReason.UNKNOWN)] * 50
    # Checks in flight while the reply travelled may see either; once refused, never again ok.
    verdicts = before_revoke + after_revoke
    first_refusal = next(i for i, v in enumerate(verdicts) if isinstance(v, Rejected))
    assert all(isinstance(v, Accepted) for v in verdicts[:first_refusal])
    assert all(v == Rejected(RejectReason.UNKNOWN) for v in verdicts[first_refusal:])


async def test_rotated_secret_works_during_grace_and_not_after(
    client: TokenClient, redis: Redis, settings: ServiceSettings
) -> None:
    created = await client.generate("gw-rotate", ["entities:read"])
    assert created.secret is not None
    assert created.token is not None
    rotated = await client.rotate(created.token.id, grace_seconds=1)
    assert rotated.secret is not None
    verifier = _verifier(redis, settings)
    assert isinstance(await verifier.verify(created.secret, "entities:read"), Accepted)
    assert isinstance(await verifier.verify(rotated.secret, "entities:read"), Accepted)
    await asyncio.sleep(1.1)
    assert await verifier.verify(created.secret, "entities:read") == Rejected(RejectReason.UNKNOWN)
    assert isinstance(await verifier.verify(rotated.secret, "entities:read"), Accepted)


async def test_usage_counts_are_exact_under_many_concurrent_checks(
    client: TokenClient, redis: Redis, settings: ServiceSettings, keys: Keys
) -> None:
    secrets = [await _secret(client, f"gw-use-{n}", ["entities:read"]) for n in range(3)]
    reporter = UsageReporter(redis, gateway="gw-1", key_prefix=settings.key_prefix, interval_s=0.05)
    verifier = _verifier(redis, settings, reporter=reporter)
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
    nowhere = _unreachable()
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


async def test_a_stalled_redis_is_refused_within_the_timeout(settings: ServiceSettings) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1_000_000)
        await asyncio.sleep(30)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stalled = Redis(port=port, retry=Retry(NoBackoff(), 0))
    verifier = _verifier(stalled, settings, timeout_s=0.3)
    started = time.monotonic()
    verdicts = await asyncio.gather(*(verifier.verify(mint(), "entities:read") for _ in range(5)))
    assert verdicts == [Rejected(RejectReason.UNAVAILABLE)] * 5
    assert time.monotonic() - started < 2
    server.close()
    await stalled.aclose()


async def test_an_unexpected_error_fails_every_waiting_check_closed(
    settings: ServiceSettings,
) -> None:
    class Broken(Redis):
        def pipeline(self, *args: object, **kwargs: object) -> Any:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad reply")

    verifier = _verifier(Broken(port=free_port()), settings)
    verdicts = await asyncio.wait_for(
        asyncio.gather(*(verifier.verify(mint(), "entities:read") for _ in range(3))), 2
    )
    assert verdicts == [Rejected(RejectReason.UNAVAILABLE)] * 3


async def test_a_gateway_allowed_only_hgetall_still_checks_tokens(
    client: TokenClient, redis: Redis, settings: ServiceSettings, redis_server: EmbeddedRedis
) -> None:
    secret = await _secret(client, "gw-acl", ["entities:read"])
    user = f"gw-{settings.key_prefix}"
    await redis.acl_setuser(
        user,
        enabled=True,
        passwords=["+gw-pass"],
        keys=[f"{settings.key_prefix}:secret:*"],
        commands=["+hgetall"],
    )
    gateway = Redis(port=redis_server.port, username=user, password="gw-pass")
    try:
        verdict = await _verifier(gateway, settings).verify(secret, "entities:read")
        assert isinstance(verdict, Accepted)
    finally:
        await gateway.aclose()
        await redis.acl_deluser(user)


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


async def test_a_missing_or_non_string_token_is_malformed_and_counted(
    settings: ServiceSettings,
) -> None:
    nowhere = _unreachable()  # none of these may reach Redis
    verifier = _verifier(nowhere, settings)
    token = mint()
    presented: list[object] = [None, token.encode(), 42, 4.2, True, [token], {"token": token}]
    for candidate in presented:
        verdict = await verifier.verify(candidate, "entities:read")
        assert verdict == Rejected(RejectReason.MALFORMED), candidate
    malformed = verifier.registry.get_sample_value(
        "tokens_verifier_checks_total", {"outcome": "malformed"}
    )
    assert malformed == len(presented)
    await nowhere.aclose()


async def test_a_missing_scope_is_the_callers_error_not_a_verdict(
    settings: ServiceSettings,
) -> None:
    nowhere = _unreachable()
    verifier = _verifier(nowhere, settings)
    token = mint()
    for scope, error in [
        (None, TypeError),
        (b"entities:read", TypeError),
        (token.encode(), TypeError),  # arguments swapped: the message must not hold the token
        (["entities:read"], TypeError),
        ("", ValueError),
    ]:
        with pytest.raises(error, match=r"scope .*'entities:read'") as caught:
            await verifier.verify(token, scope)  # type: ignore[arg-type]
        assert token not in str(caught.value)
    for outcome in ("accepted", *RejectReason):
        counted = verifier.registry.get_sample_value(
            "tokens_verifier_checks_total", {"outcome": outcome}
        )
        assert counted == 0, outcome
    await nowhere.aclose()
