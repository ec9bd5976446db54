"""A WAIT is trusted only on the primary the batch's writes went to."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from token_service.keys import Keys
from token_service.redis.replication import PrimaryChanged, WritesSeen
from token_service.redis.store import TokenStore
from token_service.settings import ServiceSettings


@pytest.fixture
async def store(settings: ServiceSettings) -> TokenStore:
    redis = Redis.from_url(settings.redis_url or "", decode_responses=True)
    return TokenStore(redis, Keys(settings.key_prefix), 60_000)


async def test_a_wait_on_the_server_that_took_the_writes_is_counted(store: TokenStore) -> None:
    seen = WritesSeen()
    await store.apply([], seen)  # nothing to send: nothing noted
    assert not seen.replids
    assert await store.replicate(1, 10, seen) == 0  # no replica here: none confirm
    assert len(seen.replids) == 1
    await store.redis.aclose()


async def test_a_wait_on_another_server_than_the_writes_is_refused(store: TokenStore) -> None:
    seen = WritesSeen()
    # As if the batch's writes had gone to a primary that has since been replaced.
    seen.saw({"master_replid": "0" * 40})
    with pytest.raises(PrimaryChanged):
        await store.replicate(1, 10, seen)
    await store.redis.aclose()


def test_an_unreadable_info_counts_as_another_server() -> None:
    seen = WritesSeen()
    seen.saw({"master_replid": "a" * 40})
    seen.saw(ConnectionError("gone"))
    with pytest.raises(PrimaryChanged):
        seen.check()
