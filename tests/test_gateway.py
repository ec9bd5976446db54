"""The gateway Verifier against real Redis: every outcome, revocation at once, grace, and
failing closed when Redis is away, stalled or broken."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from contracts import utc_now
from contracts.token_format import mint
from tests.gateways import issued_secret, unreachable_redis, verifier_for
from token_service.client import TokenClient
from token_service.gateway import Accepted, Rejected, RejectReason
from token_service.redis.embedded import EmbeddedRedis, free_port
from token_service.settings import ServiceSettings


async def test_valid_token_is_accepted_with_its_id_and_scopes(
    client: TokenClient, redis: Redis, settings: ServiceSettings
) -> None:
    reply = await client.generate("gw-ok", ["entities:write"])
    assert reply.secret is not None
    assert reply.token is not None
    verdict = await verifier_for(redis, settings).verify(reply.secret, "entities:read")
    assert verdict == Accepted(reply.token.id, ("entities:write",))


async def test_insufficient_scope_is_refused(
    client: TokenClient, redis: Redis, settings: ServiceSettings
) -> None:
    secret = await issued_secret(client, "gw-read", ["entities:read"])
    verifier = verifier_for(redis, settings)
    for wanted in ("entities:write", "reports:read", "nonsense"):
        verdict = await verifier.verify(secret, wanted)
        assert isinstance(verdict, Rejected)
        assert verdict.reason is RejectReason.INSUFFICIENT_SCOPE


async def test_malformed_token_is_refused_without_asking_redis(settings: ServiceSettings) -> None:
    nowhere = unreachable_redis()
    verifier = verifier_for(nowhere, settings)
    token = mint()
    broken = token[:-1] + ("0" if token[-1] != "0" else "1")
    for candidate in (broken, "", "tok_short", token.replace("tok_", "xyz_")):
        assert await verifier.verify(candidate, "entities:read") == Rejected(RejectReason.MALFORMED)
    assert await verifier.verify(token, "entities:read") == Rejected(RejectReason.UNAVAILABLE)
    await nowhere.aclose()


async def test_never_issued_token_is_unknown(redis: Redis, settings: ServiceSettings) -> None:
    verdict = await verifier_for(redis, settings).verify(mint(), "entities:read")
    assert verdict == Rejected(RejectReason.UNKNOWN)


async def test_expired_token_is_refused_by_the_clock_before_redis_drops_it(
    client: TokenClient, redis: Redis, settings: ServiceSettings
) -> None:
    expires = utc_now() + timedelta(hours=1)
    secret = await issued_secret(client, "gw-expiring", ["entities:read"], expires_at=expires)
    later_ms = int(expires.timestamp() * 1000) + 1
    verifier = verifier_for(redis, settings, clock_ms=lambda: later_ms)
    verdict = await verifier.verify(secret, "entities:read")
    assert isinstance(verdict, Rejected)
    assert verdict.reason is RejectReason.EXPIRED
    assert isinstance(await verifier_for(redis, settings).verify(secret, "entities:read"), Accepted)


async def test_revoked_token_is_rejected_by_the_first_check_after_the_reply(
    client: TokenClient, redis: Redis, settings: ServiceSettings
) -> None:
    reply = await client.generate("gw-revoke", ["entities:read"])
    assert reply.secret is not None
    assert reply.token is not None
    secret = reply.secret
    verifier = verifier_for(redis, settings)
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
    verifier = verifier_for(redis, settings)
    assert isinstance(await verifier.verify(created.secret, "entities:read"), Accepted)
    assert isinstance(await verifier.verify(rotated.secret, "entities:read"), Accepted)
    await asyncio.sleep(1.1)
    assert await verifier.verify(created.secret, "entities:read") == Rejected(RejectReason.UNKNOWN)
    assert isinstance(await verifier.verify(rotated.secret, "entities:read"), Accepted)


async def test_a_stalled_redis_is_refused_within_the_timeout(settings: ServiceSettings) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1_000_000)
        await asyncio.sleep(30)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stalled = Redis(port=port, retry=Retry(NoBackoff(), 0))
    verifier = verifier_for(stalled, settings, timeout_s=0.3)
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

    verifier = verifier_for(Broken(port=free_port()), settings)
    verdicts = await asyncio.wait_for(
        asyncio.gather(*(verifier.verify(mint(), "entities:read") for _ in range(3))), 2
    )
    assert verdicts == [Rejected(RejectReason.UNAVAILABLE)] * 3


async def test_a_gateway_allowed_only_hgetall_still_checks_tokens(
    client: TokenClient, redis: Redis, settings: ServiceSettings, redis_server: EmbeddedRedis
) -> None:
    secret = await issued_secret(client, "gw-acl", ["entities:read"])
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
        verdict = await verifier_for(gateway, settings).verify(secret, "entities:read")
        assert isinstance(verdict, Accepted)
    finally:
        await gateway.aclose()
        await redis.acl_deluser(user)


async def test_a_missing_or_non_string_token_is_malformed_and_counted(
    settings: ServiceSettings,
) -> None:
    nowhere = unreachable_redis()  # none of these may reach Redis
    verifier = verifier_for(nowhere, settings)
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
    nowhere = unreachable_redis()
    verifier = verifier_for(nowhere, settings)
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
