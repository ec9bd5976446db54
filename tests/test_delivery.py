"""Delivery: nothing sent is lost, nothing bad blocks the stream, nothing applies twice."""

from __future__ import annotations

import uuid
from typing import Any, cast

import orjson
import pytest
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from contracts import ErrorCode
from tests.conftest import ADMIN, wait_for
from tests.streams import events_of, listening, send_raw, stream_data
from token_service.app import Service, build_service
from token_service.commands.decoding import Parsed, open_entry
from token_service.commands.handlers import handle
from token_service.commands.pipeline import GROUP
from token_service.keys import Keys
from token_service.plans import NewToken
from token_service.redis.outcomes import Applied
from token_service.settings import ServiceSettings


def _generate(command_id: str, name: str, reply_to: str) -> dict[str, object]:
    return {
        "type": "GenerateToken",
        "command_id": command_id,
        "actor": ADMIN,
        "name": name,
        "scopes": ["entities:read"],
        "reply_to": reply_to,
    }


async def _pending(redis: Redis, keys: Keys) -> int:
    summary = await redis.xpending(keys.commands, GROUP)
    return int(summary["pending"])


async def test_command_sent_before_the_first_start_is_processed(
    settings: ServiceSettings, redis: Redis, keys: Keys
) -> None:
    async with listening(redis, f"{keys.prefix}:replies:r-early") as replies:
        await send_raw(
            redis,
            keys.commands,
            data=_generate("c-early", "early", f"{keys.prefix}:replies:r-early"),
        )
        service = build_service(settings)
        await service.app.start()
        try:
            reply = await replies.wait_for("c-early")
        finally:
            await service.app.stop()
            await service.store.redis.aclose()
    assert reply.ok


async def test_bad_entries_go_to_dead_letter_and_the_next_command_still_runs(
    service: Service, redis: Redis, keys: Keys
) -> None:
    async with listening(redis, f"{keys.prefix}:replies:r-dlq") as replies:
        await redis.xadd(keys.commands, {"data": b"\xff\xfe not json"})
        await redis.xadd(keys.commands, {"data": b"[1, 2, 3]"})
        await redis.xadd(keys.commands, {"payload": b"{}"})
        unknown = {
            "type": "DeleteEverything",
            "command_id": "c-x",
            "reply_to": f"{keys.prefix}:replies:r-dlq",
        }
        await send_raw(redis, keys.commands, data=unknown)
        await send_raw(
            redis, keys.commands, data=_generate("c-after", "after", f"{keys.prefix}:replies:r-dlq")
        )
        after = await replies.wait_for("c-after")
        refusal = await replies.wait_for(None)
    assert after.ok
    assert refusal.error is not None
    assert refusal.error.code is ErrorCode.INVALID
    assert "DeleteEverything" in refusal.error.message
    letters = await stream_data(redis, keys.dead_letter)
    reasons = [letter["reason"] for letter in letters]
    assert len(letters) == 4
    assert reasons[0].startswith("undecodable")
    assert reasons[1] == "not a JSON object"
    assert reasons[2].startswith("no 'data' field")
    assert reasons[3] == "unknown command type DeleteEverything"
    assert letters[3]["fields"]["data"] == orjson.dumps(unknown).decode()
    assert all(letter["stream"] == keys.commands for letter in letters)
    await wait_for(lambda: _no_pending(redis, keys))
    rejected = await events_of(redis, keys.events, "CommandRejected")
    assert len(rejected) == 4


async def _no_pending(redis: Redis, keys: Keys) -> bool:
    return await _pending(redis, keys) == 0


async def test_faststream_publisher_gets_its_reply_under_the_reply_prefix(
    service: Service, settings: ServiceSettings, redis: Redis, keys: Keys
) -> None:
    """FastStream's envelope works; its reply_to header obeys the same rule as the field."""
    channel = f"{keys.prefix}:replies:fs-{uuid.uuid4().hex}"
    broker = RedisBroker(settings.redis_url or "")
    await broker.start()
    try:
        async with listening(redis, channel) as replies:
            command = {k: v for k, v in _generate("c-fs", "via-faststream", "").items() if v}
            await broker.publish(command, stream=keys.commands, reply_to=channel)
            reply = await replies.wait_for("c-fs", limit_s=10)
    finally:
        await broker.stop()
    assert reply.ok
    assert reply.secret is not None


async def test_faststream_request_with_a_random_reply_channel_is_refused_not_applied(
    service: Service, settings: ServiceSettings, redis: Redis, keys: Keys
) -> None:
    """broker.request() listens on a random channel outside the reply prefix: refused."""
    broker = RedisBroker(settings.redis_url or "")
    await broker.start()
    try:
        command = {k: v for k, v in _generate("c-fs-req", "via-request", "").items() if v}
        with pytest.raises(TimeoutError):
            await broker.request(command, stream=keys.commands, timeout=2)
    finally:
        await broker.stop()
    await wait_for(lambda: _no_pending(redis, keys))
    assert await events_of(redis, keys.events, "TokenCreated") == []
    (refused,) = await events_of(redis, keys.events, "CommandRejected")
    assert refused["code"] == "invalid"


async def test_entry_left_by_a_crashed_consumer_is_claimed_and_applied_once(
    settings: ServiceSettings, redis: Redis, keys: Keys
) -> None:
    await redis.xgroup_create(keys.commands, GROUP, id="0", mkstream=True)
    async with listening(redis, f"{keys.prefix}:replies:r-claim") as replies:
        await send_raw(
            redis,
            keys.commands,
            data=_generate("c-orphan", "orphan", f"{keys.prefix}:replies:r-claim"),
        )
        # A consumer that read the entry and died before acknowledging it.
        await redis.xreadgroup(GROUP, "ghost", {keys.commands: ">"}, count=10)
        service = build_service(settings)
        await service.app.start()
        try:
            reply = await replies.wait_for("c-orphan", limit_s=10)
        finally:
            await service.app.stop()
            await service.store.redis.aclose()
    assert reply.ok
    assert len(await events_of(redis, keys.events, "TokenCreated")) == 1
    assert await _pending(redis, keys) == 0


async def test_entry_that_keeps_failing_is_dead_lettered_and_the_stream_goes_on(
    settings: ServiceSettings, redis: Redis, keys: Keys
) -> None:
    # A name bucket of the wrong type makes the script fail inside Redis on every delivery.
    await redis.set(keys.name("cursed")[0], "x")
    service = build_service(settings.model_copy(update={"max_deliveries": 2}))
    await service.app.start()
    try:
        async with listening(redis, f"{keys.prefix}:replies:r-cursed") as replies:
            await send_raw(
                redis,
                keys.commands,
                data=_generate("c-cursed", "cursed", f"{keys.prefix}:replies:r-cursed"),
            )
            await send_raw(
                redis,
                keys.commands,
                data=_generate("c-fine", "fine", f"{keys.prefix}:replies:r-cursed"),
            )
            assert (await replies.wait_for("c-fine")).ok
            await wait_for(lambda: _dead_letters(redis, keys), limit_s=15)
            gave_up = await replies.wait_for("c-cursed")
    finally:
        await service.app.stop()
        await service.store.redis.aclose()
    assert gave_up.error is not None
    assert gave_up.error.code is ErrorCode.INTERNAL
    (letter,) = await stream_data(redis, keys.dead_letter)
    assert letter["reason"] == "not handled after 2 deliveries"
    assert "c-cursed" in letter["fields"]["data"]
    await wait_for(lambda: _no_pending(redis, keys))


async def _dead_letters(redis: Redis, keys: Keys) -> bool:
    return bool(await redis.xlen(keys.dead_letter))


async def test_command_applied_but_not_acknowledged_is_answered_as_a_duplicate(
    settings: ServiceSettings, redis: Redis, keys: Keys
) -> None:
    """A consumer that ran the script and died before its XACK: the retry changes nothing."""
    service = build_service(settings)
    await service.group.ensure()
    async with listening(redis, f"{keys.prefix}:replies:r-half") as replies:
        await send_raw(
            redis, keys.commands, data=_generate("c-half", "half", f"{keys.prefix}:replies:r-half")
        )
        read = await service.store.redis.xreadgroup(GROUP, "ghost", {keys.commands: ">"})
        ((_, [(_entry_id, fields)]),) = cast(list[tuple[str, list[Any]]], read)
        parsed = open_entry({k.encode(): v.encode() for k, v in fields.items()})
        assert isinstance(parsed, Parsed)
        mutation = handle(
            parsed.command, service.pipeline.issuer(parsed.about), service.pipeline.context()
        )
        assert isinstance(mutation, NewToken)
        assert isinstance((await service.store.apply([mutation]))[0], Applied)
        await service.app.start()
        try:
            reply = await replies.wait_for("c-half", limit_s=10)
        finally:
            await service.app.stop()
            await service.store.redis.aclose()
    assert reply.ok
    assert reply.duplicate
    assert reply.secret is None
    assert len(await events_of(redis, keys.events, "TokenCreated")) == 1
    assert await _pending(redis, keys) == 0


async def test_entry_older_than_the_command_id_memory_is_not_replayed(
    service: Service, redis: Redis, keys: Keys
) -> None:
    """After a lost group, history would be read again; old commands must not reapply."""
    async with listening(redis, f"{keys.prefix}:replies:r-old") as replies:
        old = _generate("c-ancient", "ancient", f"{keys.prefix}:replies:r-old")
        await redis.xadd(keys.commands, {"data": orjson.dumps(old)}, id="1000-0")
        await send_raw(
            redis, keys.commands, data=_generate("c-new", "new", f"{keys.prefix}:replies:r-old")
        )
        assert (await replies.wait_for("c-new")).ok
    (letter,) = await stream_data(redis, keys.dead_letter)
    assert letter["entry_id"] == "1000-0"
    assert "older than" in letter["reason"]
    assert len(await events_of(redis, keys.events, "TokenCreated")) == 1


async def test_applied_entry_that_keeps_coming_back_is_answered_not_dead_lettered(
    settings: ServiceSettings, redis: Redis, keys: Keys
) -> None:
    service = build_service(settings.model_copy(update={"max_deliveries": 1}))
    await service.group.ensure()
    async with listening(redis, f"{keys.prefix}:replies:r-back") as replies:
        await send_raw(
            redis, keys.commands, data=_generate("c-back", "back", f"{keys.prefix}:replies:r-back")
        )
        read = await service.store.redis.xreadgroup(GROUP, "ghost", {keys.commands: ">"})
        ((_, [(entry_id, fields)]),) = cast(list[tuple[str, list[Any]]], read)
        parsed = open_entry({k.encode(): v.encode() for k, v in fields.items()})
        assert isinstance(parsed, Parsed)
        mutation = handle(
            parsed.command, service.pipeline.issuer(parsed.about), service.pipeline.context()
        )
        assert isinstance(mutation, NewToken)
        await service.store.apply([mutation])
        # Delivered many times already, as if each consumer died before its XACK.
        await redis.xclaim(keys.commands, GROUP, "ghost", 0, [entry_id], retrycount=9)
        await service.app.start()
        try:
            reply = await replies.wait_for("c-back", limit_s=10)
        finally:
            await service.app.stop()
            await service.store.redis.aclose()
    assert reply.ok
    assert reply.duplicate
    assert await redis.xlen(keys.dead_letter) == 0
    assert await _pending(redis, keys) == 0
