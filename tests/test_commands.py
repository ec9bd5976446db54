"""Generating tokens, and what every command goes through: validation, the administrators'
check, repeated command ids, pasted tokens, a Redis that lost its functions; against a real
redis-server and the running service. Revoking and rotating: test_revoke_rotate.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import orjson
from redis.asyncio import Redis

from contracts import ErrorCode, TokenStatus, utc_now
from contracts.token_format import is_well_formed, secret_digest
from tests.conftest import ADMIN
from tests.leaks import tokens_in_redis
from tests.streams import entries, events_of, listening, send_raw
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.settings import ServiceSettings


async def test_generated_token_is_stored_only_as_its_hash(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    reply = await client.generate("ci-deploy", ["entities:read", "reports:write"])
    assert reply.ok
    assert reply.secret is not None
    assert reply.token is not None
    assert is_well_formed(reply.secret)
    assert reply.token.hint == reply.secret[:8]
    assert reply.token.status is TokenStatus.ACTIVE
    assert reply.token.created_by == ADMIN
    lookup = await redis.hgetall(keys.secret(secret_digest(reply.secret)))
    assert lookup == {"token_id": reply.token.id, "scopes": "entities:read reports:write"}
    assert await redis.ttl(keys.secret(secret_digest(reply.secret))) == -1


async def test_generate_writes_token_created_without_any_secret(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    reply = await client.generate("billing", ["entities:read"], description="nightly export")
    assert reply.secret is not None
    assert reply.token is not None
    (event,) = await events_of(redis, keys.events, "TokenCreated")
    assert event["token_id"] == reply.token.id
    assert event["name"] == "billing"
    assert event["description"] == "nightly export"
    assert event["scopes"] == ["entities:read"]
    assert event["actor"] == ADMIN
    assert event["command_id"] == reply.command_id
    assert event["expires_at"] is None
    raw = orjson.dumps(event).decode()
    assert reply.secret not in raw
    assert secret_digest(reply.secret) not in raw


async def test_token_with_expiry_gets_a_redis_expiry(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    expires = utc_now() + timedelta(hours=1)
    reply = await client.generate("short-lived", ["entities:read"], expires_at=expires)
    assert reply.secret is not None
    assert reply.token is not None
    assert reply.token.expires_at == expires
    key = keys.secret(secret_digest(reply.secret))
    assert await redis.hget(key, "expires_at") == str(int(expires.timestamp() * 1000))
    assert 3590 <= await redis.ttl(key) <= 3600


async def test_expiry_in_the_past_is_invalid(client: TokenClient) -> None:
    reply = await client.generate("late", ["entities:read"], expires_at=utc_now())
    assert not reply.ok
    assert reply.error is not None
    assert reply.error.code is ErrorCode.INVALID
    assert reply.error.fields == {"expires_at": "must be in the future"}


async def test_unknown_resource_is_named_in_the_rejection(client: TokenClient) -> None:
    reply = await client.generate("typo", ["entitys:read"])
    assert reply.error is not None
    assert reply.error.code is ErrorCode.INVALID
    assert reply.error.fields is not None
    assert "unknown resource 'entitys'" in reply.error.fields["scopes"]


async def test_malformed_command_is_rejected_with_the_fields_at_fault(
    service: object, redis: Redis, keys: Keys
) -> None:
    async with listening(redis, f"{keys.prefix}:replies:r-malformed") as replies:
        command = {
            "type": "GenerateToken",
            "command_id": "c-bad",
            "actor": ADMIN,
            "name": "has space",
            "scopes": "entities:read",
            "reply_to": f"{keys.prefix}:replies:r-malformed",
        }
        await send_raw(redis, keys.commands, data=command)
        reply = await replies.wait_for("c-bad")
    assert reply.error is not None
    assert reply.error.code is ErrorCode.INVALID
    assert reply.error.fields is not None
    assert set(reply.error.fields) == {"name", "scopes"}
    (event,) = await events_of(redis, keys.events, "CommandRejected")
    assert event["command_id"] == "c-bad"
    assert event["code"] == "invalid"
    assert event["command_type"] == "GenerateToken"


async def test_name_is_unique_among_active_tokens_only(client: TokenClient) -> None:
    first = await client.generate("shared-name", ["entities:read"])
    assert first.token is not None
    taken = await client.generate("shared-name", ["entities:read"])
    assert taken.error is not None
    assert taken.error.code is ErrorCode.CONFLICT
    assert (await client.revoke(first.token.id)).ok
    again = await client.generate("shared-name", ["entities:read"])
    assert again.ok


async def test_name_of_an_expired_token_is_free_again(client: TokenClient) -> None:
    soon = utc_now() + timedelta(milliseconds=300)
    assert (await client.generate("fleeting", ["entities:read"], expires_at=soon)).ok
    await asyncio.sleep(0.4)
    assert (await client.generate("fleeting", ["entities:read"])).ok


async def test_only_administrators_may_act(
    service: object, redis: Redis, settings: ServiceSettings, keys: Keys
) -> None:
    prefix = settings.key_prefix
    async with TokenClient(redis, actor="mallory", key_prefix=prefix) as outsider:
        reply = await outsider.generate("sneaky", ["entities:admin"])
        assert reply.error is not None
        assert reply.error.code is ErrorCode.FORBIDDEN
        (event,) = await events_of(redis, keys.events, "CommandRejected")
        assert event["code"] == "forbidden"
        assert event["actor"] == "mallory"
        await redis.sadd(keys.admins, "mallory")
        assert (await outsider.generate("promoted", ["entities:read"])).ok


async def test_repeated_command_id_is_answered_with_the_first_outcome(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    first = await client.generate("once", ["entities:read"], command_id="gen-once")
    second = await client.generate("once", ["entities:read"], command_id="gen-once")
    assert first.ok
    assert first.secret is not None
    assert second.ok
    assert second.duplicate
    assert second.secret is None
    assert second.token == first.token
    assert len(await events_of(redis, keys.events, "TokenCreated")) == 1
    assert await redis.llen(keys.ids) == 1


async def test_repeated_rejection_is_answered_once_and_audited_once(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    first = await client.revoke("01NOSUCHTOKEN", command_id="rev-missing")
    second = await client.revoke("01NOSUCHTOKEN", command_id="rev-missing")
    assert first.error is not None
    assert second.error == first.error
    assert second.duplicate
    assert len(await events_of(redis, keys.events, "CommandRejected")) == 1


async def test_command_holding_a_real_token_is_refused_and_erased(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    created = await client.generate("victim", ["entities:read"])
    assert created.secret is not None
    async with listening(redis, f"{keys.prefix}:replies:r-paste") as replies:
        command = {
            "type": "GenerateToken",
            "command_id": "c-paste",
            "actor": ADMIN,
            "name": "paste",
            "scopes": ["entities:read"],
            "description": f"our key is {created.secret}",
            "reply_to": f"{keys.prefix}:replies:r-paste",
        }
        await send_raw(redis, keys.commands, data=command)
        reply = await replies.wait_for("c-paste")
    assert reply.error is not None
    assert reply.error.fields is not None
    assert set(reply.error.fields) == {"description"}
    assert created.secret not in reply.to_json().decode()
    for _, fields in await entries(redis, keys.commands):
        assert created.secret not in fields["data"]


async def test_token_in_a_command_id_or_field_name_never_reaches_redis(
    client: TokenClient, redis: Redis, keys: Keys, settings: ServiceSettings
) -> None:
    created = await client.generate("victim-2", ["entities:read"])
    secret = created.secret
    assert secret is not None
    async with listening(redis, f"{keys.prefix}:replies:r-sneaky") as replies:
        by_id: dict[str, object] = {
            "type": "RevokeToken",
            "command_id": f"id_{secret}",
            "actor": ADMIN,
        }
        by_id |= {"token_id": "x", "reply_to": f"{keys.prefix}:replies:r-sneaky"}
        await send_raw(redis, keys.commands, data=by_id)
        by_field: dict[str, object] = {
            "type": "RevokeToken",
            "command_id": "c-field",
            "actor": ADMIN,
        }
        by_field |= {"token_id": "x", secret: 1, "reply_to": f"{keys.prefix}:replies:r-sneaky"}
        await send_raw(redis, keys.commands, data=by_field)
        anonymous = await replies.wait_for(None)
        named = await replies.wait_for("c-field")
    assert anonymous.error is not None
    assert named.error is not None
    assert secret not in named.to_json().decode()
    assert await tokens_in_redis(settings.redis_url or "", f"{settings.key_prefix}:*") == []


async def test_commands_still_work_after_redis_forgets_its_functions(
    client: TokenClient, redis: Redis
) -> None:
    await redis.function_flush()
    created = await client.generate("after-flush", ["entities:read"])
    assert created.ok
    assert created.secret is not None
    assert created.token is not None
    await redis.function_flush()
    assert (await client.revoke(created.token.id)).ok
    await redis.function_flush()
    assert (await client.revoke(created.token.id)).error.code == "conflict"  # type: ignore[union-attr]
