"""Names are unique among active tokens whatever their case, and kept as written for display."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

from redis.asyncio import Redis

from contracts import ErrorCode, utc_now
from tests.streams import events_of
from token_service.app import Service
from token_service.client import TokenClient
from token_service.keys import Keys


def test_the_name_entry_is_the_same_in_any_case() -> None:
    keys = Keys("p")
    assert keys.name("CaseName") == keys.name("casename") == keys.name("CASENAME")
    bucket = hashlib.sha1(b"casename", usedforsecurity=False).hexdigest()[:3]
    assert keys.name("CaseName") == (f"p:names:{bucket}", "casename")
    assert keys.name("Ci-Deploy_2.x")[1] == "ci-deploy_2.x"


async def test_the_functions_put_a_name_where_keys_says(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    # The Lua derives the bucket (on revoke and expiry) as Keys does in Python.
    names = [f"Bucket-{n}" for n in range(20)]
    ids = []
    for name in names:
        reply = await client.generate(name, ["entities:read"])
        assert reply.token is not None
        ids.append(reply.token.id)
    for name, token_id in zip(names, ids, strict=True):
        assert await redis.hget(*keys.name(name)) == token_id, name
        assert (await client.revoke(token_id)).ok
        assert not await redis.hexists(*keys.name(name)), name


async def test_a_name_in_another_case_is_taken_until_the_holder_is_revoked(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    first = await client.generate("CaseName", ["entities:read"])
    assert first.token is not None
    assert first.token.name == "CaseName"
    for other in ("casename", "CASENAME", "CaseName"):
        taken = await client.generate(other, ["entities:read"])
        assert taken.error is not None, other
        assert taken.error.code is ErrorCode.CONFLICT
    assert (await client.revoke(first.token.id)).ok
    assert not await redis.hexists(*keys.name("CaseName"))
    again = await client.generate("casename", ["entities:read"])
    assert again.token is not None
    assert again.token.name == "casename"
    names = [event["name"] for event in await events_of(redis, keys.events, "TokenCreated")]
    assert names == ["CaseName", "casename"]


async def test_an_expired_name_is_free_in_any_case(
    service: Service, client: TokenClient, redis: Redis, keys: Keys
) -> None:
    soon = utc_now() + timedelta(milliseconds=200)
    assert (await client.generate("Brief-Case", ["entities:read"], expires_at=soon)).ok
    taken = await client.generate("brief-case", ["entities:read"])
    assert taken.error is not None
    assert taken.error.code is ErrorCode.CONFLICT
    await asyncio.sleep(0.3)
    await service.store.expire_due(utc_now())
    assert not await redis.hexists(*keys.name("brief-case"))
    assert (await client.generate("brief-case", ["entities:read"])).ok


async def test_an_expired_holder_not_yet_swept_gives_the_name_up(
    service: Service, client: TokenClient, redis: Redis, keys: Keys
) -> None:
    soon = utc_now() + timedelta(milliseconds=200)
    first = await client.generate("Lapsed", ["entities:read"], expires_at=soon)
    assert first.token is not None
    # Out of the sweep's sight until the name is taken again: the sweep comes late.
    assert await redis.zrem(keys.expiries, first.token.id)
    await asyncio.sleep(0.3)
    assert await redis.hget(*keys.name("lapsed")) == first.token.id
    second = await client.generate("lapsed", ["entities:read"])
    assert second.token is not None
    # The sweep that comes later leaves the new holder's name alone.
    await redis.zadd(keys.expiries, {first.token.id: 1})
    assert await service.store.expire_due(utc_now()) == 1
    assert await redis.hget(*keys.name("lapsed")) == second.token.id
    taken = await client.generate("LAPSED", ["entities:read"])
    assert taken.error is not None
    assert taken.error.code is ErrorCode.CONFLICT
