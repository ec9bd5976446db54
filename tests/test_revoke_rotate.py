"""Revoking and rotating, against a real redis-server and the running service: secrets gone
at once, grace periods that Redis ends, and what an expired, revoked or unknown token
refuses."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from redis.asyncio import Redis

from contracts import ErrorCode, TokenStatus, format_timestamp, utc_now
from contracts.token_format import secret_digest
from tests.conftest import ADMIN
from tests.streams import events_of
from token_service.client import TokenClient
from token_service.keys import Keys


async def test_revoked_token_loses_its_secret_at_once(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    created = await client.generate("to-revoke", ["entities:read"])
    assert created.token is not None
    assert created.secret is not None
    reply = await client.revoke(created.token.id, reason="rotating vendors")
    assert reply.ok
    assert reply.token is not None
    assert reply.token.status is TokenStatus.REVOKED
    assert reply.token.revoked_by == ADMIN
    assert reply.token.revoked_at is not None
    assert not await redis.exists(keys.secret(secret_digest(created.secret)))
    (event,) = await events_of(redis, keys.events, "TokenRevoked")
    assert event["reason"] == "rotating vendors"
    assert event["token_id"] == created.token.id


async def test_revoking_twice_is_a_conflict_and_unknown_is_not_found(
    client: TokenClient,
) -> None:
    created = await client.generate("twice", ["entities:read"])
    assert created.token is not None
    assert (await client.revoke(created.token.id)).ok
    again = await client.revoke(created.token.id)
    assert again.error is not None
    assert again.error.code is ErrorCode.CONFLICT
    missing = await client.revoke("01NOSUCHTOKEN")
    assert missing.error is not None
    assert missing.error.code is ErrorCode.NOT_FOUND


async def test_rotation_without_grace_replaces_the_secret(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    created = await client.generate("rotating", ["entities:write"])
    assert created.token is not None
    assert created.secret is not None
    rotated = await client.rotate(created.token.id)
    assert rotated.ok
    assert rotated.secret is not None
    assert rotated.secret != created.secret
    assert rotated.token is not None
    assert rotated.token.rotated_at is not None
    assert rotated.token.hint == rotated.secret[:8]
    assert not await redis.exists(keys.secret(secret_digest(created.secret)))
    new = await redis.hgetall(keys.secret(secret_digest(rotated.secret)))
    assert new == {"token_id": created.token.id, "scopes": "entities:write"}
    (event,) = await events_of(redis, keys.events, "TokenRotated")
    assert event["token_id"] == created.token.id


async def test_old_secret_works_during_grace_then_redis_drops_it(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    created = await client.generate("graceful", ["entities:read"])
    assert created.token is not None
    assert created.secret is not None
    rotated = await client.rotate(created.token.id, grace_seconds=1)
    assert rotated.secret is not None
    old_key = keys.secret(secret_digest(created.secret))
    assert await redis.hget(old_key, "token_id") == created.token.id
    assert 0 < await redis.pttl(old_key) <= 1000
    await asyncio.sleep(1.2)
    assert not await redis.exists(old_key)
    assert await redis.exists(keys.secret(secret_digest(rotated.secret)))


async def test_revoke_ends_a_grace_period_too(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    created = await client.generate("grace-then-revoke", ["entities:read"])
    assert created.token is not None
    assert created.secret is not None
    rotated = await client.rotate(created.token.id, grace_seconds=3600)
    assert rotated.secret is not None
    assert (await client.revoke(created.token.id)).ok
    for secret in (created.secret, rotated.secret):
        assert not await redis.exists(keys.secret(secret_digest(secret)))


async def test_rotating_a_revoked_or_unknown_token_is_refused(client: TokenClient) -> None:
    created = await client.generate("gone", ["entities:read"])
    assert created.token is not None
    await client.revoke(created.token.id)
    revoked = await client.rotate(created.token.id)
    assert revoked.error is not None
    assert revoked.error.code is ErrorCode.CONFLICT
    missing = await client.rotate("01NOSUCHTOKEN")
    assert missing.error is not None
    assert missing.error.code is ErrorCode.NOT_FOUND


async def test_expired_token_cannot_be_revoked_or_rotated(client: TokenClient) -> None:
    # Far enough ahead that a slow machine still generates it in time.
    soon = utc_now() + timedelta(seconds=1)
    created = await client.generate("lapsing", ["entities:read"], expires_at=soon)
    assert created.token is not None
    await asyncio.sleep(max(0.0, (soon - utc_now()).total_seconds()) + 0.1)
    for reply in (await client.revoke(created.token.id), await client.rotate(created.token.id)):
        assert reply.error is not None
        assert reply.error.code is ErrorCode.CONFLICT
        assert "expired" in reply.error.message


async def test_grace_never_outlives_the_token_and_the_event_says_so(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    expires = utc_now() + timedelta(minutes=10)
    created = await client.generate("short-grace", ["entities:read"], expires_at=expires)
    assert created.token is not None
    assert created.secret is not None
    await client.rotate(created.token.id, grace_seconds=3600)
    (event,) = await events_of(redis, keys.events, "TokenRotated")
    assert event["previous_valid_until"] == format_timestamp(expires)
    assert 590 <= await redis.ttl(keys.secret(secret_digest(created.secret))) <= 600
