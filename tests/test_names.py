"""Names are unique among active tokens whatever their case, and kept as written for display."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from redis.asyncio import Redis

from contracts import ErrorCode, utc_now
from tests.streams import events_of
from token_service.app import Service
from token_service.client import TokenClient
from token_service.keys import Keys


def test_the_name_key_is_the_same_in_any_case() -> None:
    keys = Keys("p")
    assert keys.name("CaseName") == keys.name("casename") == keys.name("CASENAME")
    assert keys.name("CaseName") == "p:name:casename"
    assert keys.name("Ci-Deploy_2.x") == "p:name:ci-deploy_2.x"


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
    assert not await redis.exists(keys.name("CaseName"))
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
    # Redis drops the name key at the expiry by itself; the sweep must free it even if not.
    assert await redis.persist(keys.name("brief-case"))
    await asyncio.sleep(0.3)
    await service.store.expire_due(utc_now())
    assert not await redis.exists(keys.name("brief-case"))
    assert (await client.generate("brief-case", ["entities:read"])).ok
