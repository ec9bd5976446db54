"""A service on an append-only Redis deletes every entry holding a token, and rewrites the
file only for tokens it issued, whatever shape the entry takes and however it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import orjson
import pytest
from faststream.redis.parser import BinaryMessageFormatV1
from redis.asyncio import Redis

from contracts.token_format import mint, secret_digest
from tests.conftest import ADMIN, wait_for
from tests.leaks import tokens_in_redis
from tests.streams import stream_data
from token_service.app import Service, build_service
from token_service.client import TokenClient
from token_service.commands.pipeline import GROUP
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis
from token_service.settings import ServiceSettings


@pytest.fixture
def aof_server() -> Iterator[EmbeddedRedis]:
    """A Redis of the test's own with the append-only file on, so rewrites are its own."""
    server = EmbeddedRedis.start(appendonly=True, appendfsync="everysec")
    yield server
    server.stop()


@pytest.fixture
def settings(settings: ServiceSettings, aof_server: EmbeddedRedis) -> ServiceSettings:
    """The test's settings, pointed at the append-only Redis; the shared ``redis`` and
    ``service`` fixtures follow them there."""
    return settings.model_copy(update={"redis_url": aof_server.url, "max_deliveries": 1})


@pytest.fixture
async def raw(settings: ServiceSettings) -> AsyncIterator[Redis]:
    """A client of the append-only Redis that leaves bytes alone (envelopes are binary)."""
    client = Redis.from_url(settings.redis_url or "")
    yield client
    await client.aclose()


async def _rewrites(redis: Redis) -> int:
    info = await redis.info("persistence")
    # A rewrite still running or waiting is counted: it was started.
    busy = int(info["aof_rewrite_in_progress"]) + int(info["aof_rewrite_scheduled"])
    return int(info["aof_rewrites"]) + busy


def _escaped(token: str) -> str:
    return token.replace("_", "\\u005f")


def _revoke(command_id: str, reason: str) -> str:
    return (
        orjson.dumps(
            {"type": "RevokeToken", "command_id": command_id, "actor": ADMIN, "token_id": "01X"}
        ).decode()[:-1]
        + f',"reason":"{reason}"}}'
    )


async def _envelopes(token: str) -> list[dict[Any, Any]]:
    binary = await BinaryMessageFormatV1.encode(
        message=_revoke("c-bin", _escaped(token)).encode(),
        reply_to=None,
        headers=None,
        correlation_id="c-bin",
    )
    legacy = orjson.dumps({"data": _revoke("c-json", _escaped(token)), "headers": {}})
    return [
        {"__data__": binary},
        {"__data__": legacy},
        {"data": f'{{"broken": "{_escaped(token)}'},
    ]


async def _all_gone(redis: Redis, keys: Keys, ids: list[Any]) -> bool:
    """Every entry deleted and acknowledged (``redis`` must not decode: some are binary)."""
    for entry_id in ids:
        if await redis.xrange(keys.commands, min=entry_id, max=entry_id):
            return False
    return int((await redis.xpending(keys.commands, GROUP))["pending"]) == 0


async def _issued_secret(redis: Redis, keys: Keys) -> str:
    async with TokenClient(redis, actor=ADMIN, key_prefix=keys.prefix, timeout=10) as client:
        created = await client.generate("pasted", ["entities:read"])
    assert created.secret is not None
    return created.secret


async def test_escaped_issued_tokens_in_envelopes_are_deleted_and_scrubbed(
    service: Service, redis: Redis, raw: Redis, settings: ServiceSettings
) -> None:
    keys = Keys(settings.key_prefix)
    secret = await _issued_secret(redis, keys)
    before = await _rewrites(redis)
    ids = [await raw.xadd(keys.commands, f) for f in await _envelopes(secret)]
    await wait_for(lambda: _all_gone(raw, keys, ids), limit_s=10)
    scrubber = service.pipeline.scrubber
    await wait_for(lambda: _true(scrubber.idle), limit_s=10)
    assert scrubber.rewrites >= 1
    assert await _rewrites(redis) > before
    assert await tokens_in_redis(settings.redis_url or "", f"{keys.prefix}:*") == []


async def test_made_up_tokens_are_deleted_without_making_redis_rewrite(
    service: Service, redis: Redis, raw: Redis, settings: ServiceSettings
) -> None:
    keys = Keys(settings.key_prefix)
    before = await _rewrites(redis)
    ids: list[Any] = []
    for n in range(100):  # checksum-valid, never issued: anyone can make these
        fake = mint()
        ids.append(await redis.xadd(keys.commands, {"data": f"paste {n} {fake}"}))
        for fields in await _envelopes(mint("acme")):
            ids.append(await raw.xadd(keys.commands, fields))
    await wait_for(lambda: _all_gone(raw, keys, ids), limit_s=30)
    await asyncio.sleep(0.5)  # time enough for a rewrite to be asked for, were it wanted
    scrubber = service.pipeline.scrubber
    assert scrubber.rewrites == 0
    assert await _rewrites(redis) == before
    # An issued token in the same shapes still gets the file rewritten.
    secret = await _issued_secret(redis, keys)
    ids = [cast(str, await redis.xadd(keys.commands, {"data": f"oops {secret}X"}))]
    await wait_for(lambda: _all_gone(raw, keys, ids), limit_s=10)
    await wait_for(lambda: _true(scrubber.rewrites == 1), limit_s=10)
    assert await tokens_in_redis(settings.redis_url or "", f"{keys.prefix}:*") == []


async def test_a_revoked_token_pasted_still_gets_the_file_rewritten(
    service: Service, redis: Redis, raw: Redis, settings: ServiceSettings
) -> None:
    keys = Keys(settings.key_prefix)
    async with TokenClient(redis, actor=ADMIN, key_prefix=keys.prefix, timeout=10) as client:
        created = await client.generate("gone", ["entities:read"])
        assert created.token is not None
        assert created.secret is not None
        assert (await client.revoke(created.token.id)).ok
    assert not await redis.exists(keys.secret(secret_digest(created.secret)))
    ids = [await raw.xadd(keys.commands, {"data": f"old one: {created.secret}"})]
    await wait_for(lambda: _all_gone(raw, keys, ids), limit_s=10)
    scrubber = service.pipeline.scrubber
    await wait_for(lambda: _true(scrubber.rewrites == 1), limit_s=10)


async def test_an_entry_given_up_after_too_many_deliveries_is_deleted_if_it_holds_a_token(
    settings: ServiceSettings, redis: Redis, raw: Redis
) -> None:
    keys = Keys(settings.key_prefix)
    service = build_service(settings)  # max_deliveries=1
    await service.group.ensure()
    pasted = mint()
    entry_id = await redis.xadd(keys.commands, {"data": _revoke("c-stuck", f"x {pasted}")})
    # A consumer that took it and died: delivered twice before the service starts.
    for start in (">", "0"):
        await redis.xreadgroup(GROUP, "ghost", {keys.commands: start})
    await service.app.start()
    try:
        await wait_for(lambda: _all_gone(raw, keys, [entry_id]), limit_s=15)
    finally:
        await service.app.stop()
        await service.store.redis.aclose()
    (letter,) = await stream_data(redis, keys.dead_letter)
    assert letter["entry_id"] == entry_id
    assert letter["reason"].startswith("not handled after")
    assert await tokens_in_redis(settings.redis_url or "", f"{keys.prefix}:*") == []


async def test_an_entry_too_old_to_apply_is_deleted_if_it_holds_a_token(
    service: Service, redis: Redis, raw: Redis, settings: ServiceSettings
) -> None:
    keys = Keys(settings.key_prefix)
    data = _revoke("c-ancient", f"x {_escaped(mint())}")
    entry_id = cast(str, await redis.xadd(keys.commands, {"data": data}, id="1000-0"))
    await wait_for(lambda: _all_gone(raw, keys, [entry_id]), limit_s=10)
    (letter,) = await stream_data(redis, keys.dead_letter)
    assert "older than" in letter["reason"]
    assert await tokens_in_redis(settings.redis_url or "", f"{keys.prefix}:*") == []


async def _true(value: bool) -> bool:
    return value
