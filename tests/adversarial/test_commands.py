"""Findings 2, 4 and 5: one bad entry stalled a batch; rejections amplified memory; the
duplicate check ran before the administrator check; one id could carry two bodies."""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from contracts import ErrorCode
from tests.conftest import ADMIN
from tests.streams import events_of, listening, send_raw, stream_data
from token_service.app import Service, build_service
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.settings import ServiceSettings


def _command(keys: Keys, command_id: str, actor: str = ADMIN, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "GenerateToken",
        "command_id": command_id,
        "actor": actor,
        "name": command_id,
        "scopes": ["entities:read"],
        "reply_to": f"{keys.prefix}:replies:adv",
    }
    return {**base, **fields}


async def test_a_non_administrator_replaying_an_administrators_id_learns_nothing(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    first = await client.generate("admins-token", ["entities:read"], command_id="c-shared")
    assert first.ok
    async with listening(redis, f"{keys.prefix}:replies:adv") as replies:
        await send_raw(
            redis, keys.commands, data=_command(keys, "c-shared", "mallory", name="admins-token")
        )
        reply = await replies.wait_for("c-shared")
    assert not reply.ok
    assert not reply.duplicate
    assert reply.token is None
    assert reply.error is not None
    assert reply.error.code is ErrorCode.FORBIDDEN


async def test_an_id_used_first_by_a_non_administrator_does_not_block_the_administrator(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    async with listening(redis, f"{keys.prefix}:replies:adv") as replies:
        await send_raw(redis, keys.commands, data=_command(keys, "c-squat", "mallory"))
        assert (await replies.wait_for("c-squat")).error is not None
    mine = await client.generate("c-squat", ["entities:read"], command_id="c-squat")
    assert mine.ok
    assert not mine.duplicate
    assert mine.secret


async def test_the_same_id_with_another_body_is_a_conflict_never_the_first_outcome(
    client: TokenClient,
) -> None:
    first = await client.generate("first-body", ["entities:read"], command_id="c-twice")
    assert first.ok
    second = await client.generate("second-body", ["entities:read"], command_id="c-twice")
    assert second.error is not None
    assert second.error.code is ErrorCode.CONFLICT
    assert second.token is None
    again = await client.generate("first-body", ["entities:read"], command_id="c-twice")
    assert again.ok
    assert again.duplicate


async def test_a_rejection_costs_a_fixed_size_whatever_the_input(
    service: Service, redis: Redis, keys: Keys
) -> None:
    junk = {f"f{n}": 1 for n in range(6_300)}  # about 64 KiB of unknown fields
    command = {**_command(keys, "c-wide"), **junk}
    assert len(orjson.dumps(command)) < 64 * 1024
    async with listening(redis, f"{keys.prefix}:replies:adv") as replies:
        await send_raw(redis, keys.commands, data=command)
        reply = await replies.wait_for("c-wide")
    assert reply.error is not None
    assert reply.error.fields is not None
    assert len(reply.error.fields) <= 21
    assert len(reply.to_json()) < 8_000
    remembered = keys.command("shared", ADMIN, "c-wide")
    assert 0 < await redis.strlen(remembered) < 8_000


async def test_an_oversized_command_is_still_answered_invalid(
    service: Service, redis: Redis, keys: Keys
) -> None:
    command = _command(keys, "c-huge", description="x" * 70_000)
    async with listening(redis, f"{keys.prefix}:replies:adv") as replies:
        await send_raw(redis, keys.commands, data=command)
        reply = await replies.wait_for("c-huge")
    assert reply.error is not None
    assert reply.error.code is ErrorCode.INVALID
    assert "exceeds" in reply.error.message


async def test_one_poisoned_entry_in_a_batch_of_fifty_harms_no_other(
    settings: ServiceSettings, redis: Redis, keys: Keys, client_free_token: str
) -> None:
    # A stored value no writer should have written: building this token's view fails.
    await redis.hset(keys.token(client_free_token), "created_at", "yesterday")
    revoke = {
        "type": "RevokeToken",
        "command_id": "c-poison",
        "actor": ADMIN,
        "token_id": client_free_token,
        "reply_to": f"{keys.prefix}:replies:adv",
    }
    async with listening(redis, f"{keys.prefix}:replies:adv") as replies:
        for n in range(49):
            await send_raw(redis, keys.commands, data=_command(keys, f"c-good-{n}"))
        await send_raw(redis, keys.commands, data=revoke)
        service = build_service(settings)  # started after the writes: one batch of 50
        await service.app.start()
        try:
            await replies.wait_count(50, limit_s=20)
        finally:
            await service.app.stop()
            await service.store.redis.aclose()
    good = [r for r in replies.received if r.command_id != "c-poison"]
    assert len(good) == 49
    assert all(r.ok and r.secret for r in good)
    (poisoned,) = replies.for_command("c-poison")
    assert poisoned.error is not None
    (letter,) = await stream_data(redis, keys.dead_letter)
    assert letter["reason"].startswith("internal error")
    assert len(await events_of(redis, keys.events, "TokenCreated")) == 49 + 1
