"""The verdict cache against a real redis-server and the real service: what it saves
Redis, and that every change to a secret key reaches it (revoke, rotate, a new token).

Faults (a killed tracking connection, a restart, a flush, a silent Redis, a read racing
a write, lost invalidations) are in ``test_gateway_cache_faults.py``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from contracts import utc_now
from contracts.token_format import mint
from tests.caching import (
    SCOPE,
    cached_verifier,
    eventually,
    reads,
    secret_key,
    store_token,
    tracking_client_ids,
)
from token_service.client import TokenClient
from token_service.gateway import Accepted, CacheOptions, Rejected, RejectReason, Verifier
from token_service.gateway.cache import MISS, SecretCache
from token_service.keys import Keys

UNKNOWN = Rejected(RejectReason.UNKNOWN)


async def test_caching_is_off_by_default_and_opens_no_tracking_connection(
    redis: Redis, keys: Keys
) -> None:
    verifier = Verifier(redis, key_prefix=keys.prefix)
    token = await store_token(redis, keys)
    assert verifier.cache is None
    assert not await verifier.start()
    before = await reads(redis)
    for _ in range(3):
        assert (await verifier.verify(token, SCOPE)).ok
    assert await reads(redis) == before + 3
    assert await tracking_client_ids(redis) == []
    await verifier.close()


async def test_a_cached_check_does_not_reach_redis(redis: Redis, keys: Keys) -> None:
    token = await store_token(redis, keys)  # before tracking: its write is no invalidation
    verifier = await cached_verifier(redis, keys)
    assert isinstance(await verifier.verify(token, SCOPE), Accepted)
    before = await reads(redis)
    for _ in range(200):
        assert isinstance(await verifier.verify(token, SCOPE), Accepted)
    assert await reads(redis) == before
    assert verifier.cache is not None
    assert verifier.cache.hits == 200
    # The verdict is made on every check: a kept read still answers per scope.
    verdict = await verifier.verify(token, "entities:write")
    assert isinstance(verdict, Rejected)
    assert verdict.reason is RejectReason.INSUFFICIENT_SCOPE
    await verifier.close()
    assert await tracking_client_ids(redis) == []
    # Closed for good: checks go on, uncached, and no tracking comes back.
    before = await reads(redis)
    assert isinstance(await verifier.verify(token, SCOPE), Accepted)
    assert await reads(redis) == before + 1
    assert not await verifier.start(0.2)
    assert await tracking_client_ids(redis) == []


async def test_a_repeated_unknown_token_reaches_redis_once(redis: Redis, keys: Keys) -> None:
    verifier = await cached_verifier(redis, keys)
    unknown = mint()
    before = await reads(redis)
    for _ in range(500):
        assert await verifier.verify(unknown, SCOPE) == UNKNOWN
    assert await reads(redis) == before + 1
    await verifier.close()


async def test_an_absent_key_kept_is_forgotten_when_the_token_appears(
    redis: Redis, keys: Keys
) -> None:
    verifier = await cached_verifier(redis, keys)
    assert verifier.cache is not None
    token = mint()
    assert await verifier.verify(token, SCOPE) == UNKNOWN
    assert await verifier.verify(token, SCOPE) == UNKNOWN
    assert verifier.cache.hits == 1
    # The service writes the key when it issues the token.
    seen = verifier.cache.invalidations
    await redis.hset(secret_key(keys, token), mapping={"token_id": "01LATE", "scopes": SCOPE})
    await eventually(lambda: verifier.cache is not None and verifier.cache.invalidations > seen)
    assert await verifier.verify(token, SCOPE) == Accepted("01LATE", (SCOPE,))
    await verifier.close()


async def test_a_revoked_token_is_refused_by_the_next_check_after_the_reply(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    created = await client.generate("cache-revoke", [SCOPE])
    assert created.secret is not None
    assert created.token is not None
    verifier = await cached_verifier(redis, keys)
    for _ in range(3):
        assert isinstance(await verifier.verify(created.secret, SCOPE), Accepted)
    assert verifier.cache is not None
    assert verifier.cache.hits == 2
    # Redis sends the invalidation before it answers the revoke, so before the reply.
    assert (await client.revoke(created.token.id)).ok
    assert await verifier.verify(created.secret, SCOPE) == UNKNOWN
    assert await verifier.verify(created.secret, SCOPE) == UNKNOWN
    await verifier.close()


async def test_checks_racing_a_revoke_never_accept_after_the_first_refusal(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    created = await client.generate("cache-race", [SCOPE])
    assert created.secret is not None
    assert created.token is not None
    secret = created.secret
    verifier = await cached_verifier(redis, keys)
    revoked = asyncio.Event()
    before: list[object] = []
    after: list[object] = []

    async def gateway() -> None:
        while len(after) < 50:
            started_after = revoked.is_set()
            verdict = await verifier.verify(secret, SCOPE)
            (after if started_after else before).append(verdict)
            await asyncio.sleep(0)  # between requests, as a server does

    looping = asyncio.create_task(gateway())
    await asyncio.sleep(0.05)
    assert (await client.revoke(created.token.id)).ok
    revoked.set()
    await asyncio.wait_for(looping, 10)
    assert after == [UNKNOWN] * 50
    verdicts = before + after
    first_refusal = next(i for i, v in enumerate(verdicts) if isinstance(v, Rejected))
    assert all(isinstance(v, Accepted) for v in verdicts[:first_refusal])
    assert all(v == UNKNOWN for v in verdicts[first_refusal:])
    assert verifier.cache is not None
    assert verifier.cache.hits > 0
    await verifier.close()


async def test_a_rotated_secret_works_from_the_cache_during_grace_and_not_after(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    created = await client.generate("cache-rotate", [SCOPE])
    assert created.secret is not None
    assert created.token is not None
    verifier = await cached_verifier(redis, keys)
    assert isinstance(await verifier.verify(created.secret, SCOPE), Accepted)
    rotated = await client.rotate(created.token.id, grace_seconds=1)
    assert rotated.secret is not None
    assert isinstance(await verifier.verify(rotated.secret, SCOPE), Accepted)
    # The rotation gave the old key a TTL (an invalidation): read again, it is kept with
    # the key's end, which no field of the hash states.
    assert isinstance(await verifier.verify(created.secret, SCOPE), Accepted)
    before = await reads(redis)
    assert isinstance(await verifier.verify(created.secret, SCOPE), Accepted)
    assert await reads(redis) == before
    await asyncio.sleep(1.1)
    assert await verifier.verify(created.secret, SCOPE) == UNKNOWN
    assert isinstance(await verifier.verify(rotated.secret, SCOPE), Accepted)
    await verifier.close()


async def test_a_kept_read_is_judged_against_the_clock_on_every_check(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    expires = utc_now() + timedelta(hours=1)
    reply = await client.generate("cache-expiring", [SCOPE], expires_at=expires)
    assert reply.secret is not None
    now_ms = [int(utc_now().timestamp() * 1000)]
    verifier = await cached_verifier(redis, keys, clock_ms=lambda: now_ms[0])
    assert isinstance(await verifier.verify(reply.secret, SCOPE), Accepted)
    assert isinstance(await verifier.verify(reply.secret, SCOPE), Accepted)
    now_ms[0] = int(expires.timestamp() * 1000) + 1
    before = await reads(redis)
    verdict = await verifier.verify(reply.secret, SCOPE)
    assert isinstance(verdict, Rejected)
    assert verdict.reason is RejectReason.EXPIRED
    assert await reads(redis) == before  # the clock, not Redis, refused it
    await verifier.close()


@pytest.mark.parametrize(
    ("options", "kept"),
    [
        (CacheOptions(max_entries=3), 3),
        # Each entry is estimated at about 500 bytes here: two fit, not three.
        (CacheOptions(max_bytes=1200), 2),
    ],
)
def test_the_cache_is_bounded_and_evicts_the_least_recently_used(
    options: CacheOptions, kept: int
) -> None:
    cache = SecretCache(options)
    cache.tracking_up()
    keys = [f"tokens:secret:{i:064d}" for i in range(5)]
    for key in keys:
        ticket = cache.begin([key])
        cache.store(ticket, {key: ("01TOKEN", SCOPE, None, None, None)})
        cache.end(ticket)
        cache.get(keys[0])  # the first key stays in use
    assert len(cache) == kept
    assert cache.bytes <= options.max_bytes
    assert cache.get(keys[0]) == ("01TOKEN", SCOPE, None, None, None)
    assert cache.get(keys[-1]) == ("01TOKEN", SCOPE, None, None, None)
    assert cache.get(keys[1]) is MISS
    assert cache.get(keys[2]) is MISS


def test_bad_cache_options_are_refused() -> None:
    for bad in ({"max_entries": 0}, {"max_bytes": 0}, {"max_age_s": 0}, {"heartbeat_s": -1}):
        with pytest.raises(ValueError, match="positive"):
            CacheOptions(**bad)


async def test_verify_now_answers_only_what_needs_no_read(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    created = await client.generate("cache-now", [SCOPE])
    assert created.secret is not None
    assert created.token is not None
    verifier = await cached_verifier(redis, keys)
    assert verifier.verify_now("not-a-token", SCOPE) == Rejected(RejectReason.MALFORMED)
    assert verifier.verify_now(created.secret, SCOPE) is None  # never read: Redis must say
    assert isinstance(await verifier.verify(created.secret, SCOPE), Accepted)
    before = await reads(redis)
    assert isinstance(verifier.verify_now(created.secret, SCOPE), Accepted)
    assert await reads(redis) == before
    # A revoke empties the kept read: the same-turn path has nothing to answer with.
    assert (await client.revoke(created.token.id)).ok
    assert verifier.verify_now(created.secret, SCOPE) is None
    assert await verifier.verify(created.secret, SCOPE) == UNKNOWN
    await verifier.close()
