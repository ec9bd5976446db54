"""Hostile and broken ``TokenUsed`` reports: none may make a token unreadable, count twice,
hold good reports back, or leave a token in Redis.

Everything runs against a real redis-server with the real service and audit worker, as
``tests/test_audit.py`` does; the leaked-token test logs each in as its own ACL user on an
append-only Redis of its own.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
import pytest
from redis.asyncio import Redis
from ulid import ULID

from contracts import TokenStatus, TokenUsed, format_timestamp, to_millis, utc_now
from tests.conftest import wait_for
from tests.streams import stream_data
from token_service.app import Service
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.redis.connection import RedisAccess
from token_service.redis.library import call
from token_service.settings import ServiceSettings
from workers.audit import EVENTS_GROUP, USAGE_GROUP, Worker, build_worker
from workers.settings import AuditSettings

HOUR = timedelta(hours=1)


def _audit_settings(access: RedisAccess, prefix: str, **extra: Any) -> AuditSettings:
    options: dict[str, Any] = {
        "http_port": None,
        "key_prefix": prefix,
        "consumer_name": f"audit-{uuid.uuid4().hex[:6]}",
        "poll_ms": 20,
        "claim_idle_ms": 60_000,  # no batch is rescued by a claim within a test
        "max_deliveries": 1,
        **extra,
    }
    return AuditSettings(**access.access_fields(), **options)


@pytest.fixture
async def worker(settings: ServiceSettings) -> AsyncIterator[Worker]:
    """One audit worker in this test's event loop; started by the test (``start``)."""
    built = build_worker(_audit_settings(settings, settings.key_prefix))
    yield built
    await built.app.stop()


def _used(token_id: str, used_at: datetime, count: int = 1, /, **override: Any) -> bytes:
    """A ``TokenUsed`` as a gateway writes it, with any field ``override``-n, valid or not."""
    event = TokenUsed(token_id=token_id, actor="gw", used_at=used_at, count=count, gateway="gw")
    return orjson.dumps({**orjson.loads(event.to_json()), **override})


async def _add(redis: Redis, stream: str, *entries: bytes) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for data in entries:
            pipe.xadd(stream, {"data": data})
        await pipe.execute()


async def _settled(redis: Redis, stream: str, group: str) -> bool:
    """Everything in ``stream`` delivered to ``group`` and nothing pending."""
    newest = cast(list[tuple[str, object]], await redis.xrevrange(stream, count=1))
    groups = await redis.xinfo_groups(stream)
    delivered = [g["last-delivered-id"] for g in groups if g["name"] == group]
    if not newest or delivered != [newest[0][0]]:
        return False
    return int((await redis.xpending(stream, group))["pending"]) == 0


async def _usage_settled(redis: Redis, keys: Keys) -> bool:
    return await _settled(redis, keys.usage, USAGE_GROUP)


async def _uses(redis: Redis, keys: Keys, token_id: str) -> dict[str, int]:
    daily = cast(dict[str, str], await redis.hgetall(keys.token_daily(token_id)))
    return {day: int(n) for day, n in daily.items()}


async def _generate(client: TokenClient, name: str, **options: Any) -> str:
    reply = await client.generate(name, ["entities:read"], **options)
    assert reply.token is not None
    return reply.token.id


def _metric(worker: Worker, name: str) -> float:
    return worker.registry.get_sample_value(name) or 0.0


# 1. used_at in the range the worker can believe


async def test_use_far_in_the_past_or_future_is_dead_lettered_and_never_shown(
    client: TokenClient, service: Service, worker: Worker, redis: Redis, keys: Keys
) -> None:
    token_id = await _generate(client, "time-travel")
    created = ULID.from_str(token_id).datetime
    soon = utc_now() + timedelta(seconds=60)  # within AUDIT_USAGE_SKEW_SECONDS: folded
    bad = {
        datetime(500, 1, 1, tzinfo=UTC): "before the token was created",
        datetime(1, 1, 1, tzinfo=UTC): "before the token was created",
        created - timedelta(milliseconds=1): "before the token was created",
        datetime(2099, 1, 1, tzinfo=UTC): "more than 300 s ahead of the worker's clock",
        utc_now() + timedelta(seconds=400): "more than 300 s ahead of the worker's clock",
    }
    await _add(redis, keys.usage, *(_used(token_id, at) for at in bad), _used(token_id, soon, 2))
    await worker.app.start()
    await wait_for(lambda: _usage_settled(redis, keys))

    letters = await stream_data(redis, keys.dead_letter)
    assert [letter["reason"] for letter in letters] == [f"used_at is {why}" for why in bad.values()]
    assert await redis.hget(keys.token(token_id), "last_used_ms") == str(to_millis(soon))
    assert await _uses(redis, keys, token_id) == {soon.strftime("%Y-%m-%d"): 2}
    # The token reads, lists and answers commands as it should.
    view = await service.store.get(token_id)
    assert view is not None
    assert view.last_used_at == soon
    assert [v.id for v in (await service.store.list_tokens()).tokens] == [token_id]
    revoked = await client.revoke(token_id)
    assert revoked.ok
    assert revoked.token is not None
    assert revoked.token.last_used_at == soon


# 2. only active tokens' uses are folded; the others are counted, not dead-lettered


async def test_uses_of_unknown_revoked_or_expired_tokens_are_skipped_not_dead_lettered(
    client: TokenClient, service: Service, worker: Worker, redis: Redis, keys: Keys
) -> None:
    active = await _generate(client, "active")
    revoked = await _generate(client, "revoked")
    assert (await client.revoke(revoked)).ok
    expired = await _generate(client, "expired", expires_at=utc_now() + timedelta(seconds=0.3))
    await asyncio.sleep(0.4)
    unknown = str(ULID())  # shaped like a token id, but never issued
    others = [revoked, expired, unknown, "not-a-token-id"]
    now = utc_now()
    await _add(redis, keys.usage, *(_used(t, now, 3) for t in [active, *others]))
    await worker.app.start()
    await wait_for(lambda: _usage_settled(redis, keys))

    assert await _uses(redis, keys, active) == {now.strftime("%Y-%m-%d"): 3}
    for token_id in others:
        assert await _uses(redis, keys, token_id) == {}
        assert await redis.hget(keys.token(token_id), "last_used_ms") is None
    assert not await redis.exists(keys.token(unknown))
    assert await redis.xlen(keys.dead_letter) == 0
    assert _metric(worker, "tokens_usage_events_folded_total") == 1
    assert _metric(worker, "tokens_usage_events_skipped_total") == len(others)


# 3. event ids are short


async def test_an_event_id_over_128_characters_is_dead_lettered_not_remembered(
    client: TokenClient, worker: Worker, redis: Redis, keys: Keys
) -> None:
    token_id = await _generate(client, "long-ids")
    now = utc_now()
    longest, huge = "e" * 128, "e" * 60_000
    await _add(
        redis,
        keys.usage,
        _used(token_id, now, 1, event_id=longest),
        _used(token_id, now, 5, event_id=huge),
    )
    await worker.app.start()
    await wait_for(lambda: _usage_settled(redis, keys))

    (letter,) = await stream_data(redis, keys.dead_letter)
    assert letter["reason"].startswith("not a valid event: event_id:")
    assert await _uses(redis, keys, token_id) == {now.strftime("%Y-%m-%d"): 1}
    remembered = [
        member
        async for key in redis.scan_iter(match=f"{keys.prefix}:seen:*")
        for member in await redis.smembers(key)
    ]
    assert longest in remembered
    assert max(len(member) for member in remembered) == 128  # lifecycle event ids beside it


# 4. a repeat is its event id, whatever times it states


async def test_a_resent_report_counts_once_whatever_its_occurred_at_says(
    client: TokenClient, worker: Worker, redis: Redis, keys: Keys
) -> None:
    token_id = await _generate(client, "resent")
    await worker.app.start()
    now = utc_now()
    first = TokenUsed(token_id=token_id, actor="gw", used_at=now, count=4, gateway="gw")
    resent = [first.model_copy(update={"occurred_at": now + shift}) for shift in (-2 * HOUR, HOUR)]
    await _add(redis, keys.usage, first.to_json(), *(event.to_json() for event in resent))
    await wait_for(lambda: _usage_settled(redis, keys))
    await _add(
        redis, keys.usage, first.model_copy(update={"occurred_at": now - 5 * HOUR}).to_json()
    )
    await wait_for(lambda: _usage_settled(redis, keys))

    assert await _uses(redis, keys, token_id) == {now.strftime("%Y-%m-%d"): 4}
    assert _metric(worker, "tokens_usage_events_repeated_total") == 3


async def test_a_lifecycle_event_again_with_another_hour_joins_the_trail_once(
    client: TokenClient, worker: Worker, redis: Redis, keys: Keys
) -> None:
    token_id = await _generate(client, "trail-once")
    await worker.app.start()
    await wait_for(lambda: _settled(redis, keys.events, EVENTS_GROUP))
    (created,) = await stream_data(redis, keys.events)
    occurred = datetime.fromisoformat(created["occurred_at"])
    for shift in (-3 * HOUR, 2 * HOUR):
        again = {**created, "occurred_at": format_timestamp(occurred + shift)}
        await redis.xadd(keys.events, {"data": orjson.dumps(again)})
    await wait_for(lambda: _settled(redis, keys.events, EVENTS_GROUP))

    assert await redis.llen(keys.token_audit(token_id)) == 1


async def test_the_fold_remembers_this_window_and_the_previous_one_by_arrival(
    client: TokenClient, service: Service, redis: Redis, keys: Keys
) -> None:
    """The function itself, told which dedupe window the worker's clock is in."""
    token_id = await _generate(client, "windows")
    now_ms = to_millis(utc_now())
    fold = ["same-event", token_id, str(now_ms), "1", utc_now().strftime("%Y-%m-%d")]

    async def fold_in(window: int) -> list[int]:
        args = [keys.prefix, now_ms, window, window - 1, 7_200_000, keys.usage, USAGE_GROUP]
        args += [orjson.dumps([fold]).decode(), "[]"]
        return cast(list[int], await call(redis, "audit_fold_usage", (), args))

    assert await fold_in(100) == [1, 0, 0]  # folded
    assert await fold_in(100) == [0, 1, 0]  # the same window: a repeat
    assert await fold_in(101) == [0, 1, 0]  # the next window still remembers it
    assert await fold_in(102) == [1, 0, 0]  # a window later, it is forgotten
    assert 0 < await redis.pttl(keys.seen(100)) <= 7_200_000


# 5. one bad entry holds no good one back


@pytest.mark.parametrize(
    "poison",
    [
        {"used_at": "0001-01-01T00:00:00.000Z"},
        {"used_at": "9999-12-31T23:59:59.999Z"},
        {"token_id": "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"},  # a ULID of the year 10889
        {"event_id": "x" * 100_000},
    ],
    ids=["year-1", "year-9999", "ulid-max", "huge-event-id"],
)
async def test_one_poisonous_entry_among_a_hundred_good_ones_holds_none_back(
    poison: dict[str, Any], client: TokenClient, worker: Worker, redis: Redis, keys: Keys
) -> None:
    token_id = await _generate(client, "busy")
    now = utc_now()
    good = [_used(token_id, now + timedelta(milliseconds=n)) for n in range(100)]
    bad = _used(token_id, now, **poison)
    await _add(redis, keys.usage, *good[:50], bad, *good[50:])  # one batch
    await worker.app.start()
    # Far within the claim idle time (60 s): nothing waits for a redelivery.
    await wait_for(lambda: _usage_settled(redis, keys), limit_s=5)

    assert await _uses(redis, keys, token_id) == {now.strftime("%Y-%m-%d"): 100}
    (letter,) = await stream_data(redis, keys.dead_letter)
    assert letter["stream"] == keys.usage
    assert _metric(worker, "tokens_usage_events_folded_total") == 100


def test_hostile_values_in_every_field_never_raise_out_of_reading() -> None:
    """Not pinned to a bug found: reading and judging answer something for anything."""
    # Imported here, so that the other tests of this module run on code without it too.
    from workers.usage_batch import UsageBatch

    base = orjson.loads(_used(str(ULID()), utc_now()))
    hostile: list[Any] = [
        10**30, -(10**30), 1e308, -1, 0, None, True, [], {}, "", "\x00", "\ud800",
        "9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00.000Z", "2026-02-30T00:00:00.000Z",
        "9999-12-31T23:00:00.000-05:00", "+275760-09-13T00:00:00.000Z", "٢٠٢٦-01-01T00:00:00.000Z",
        "ZZZZZZZZZZZZZZZZZZZZZZZZZZ", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ", "x" * 70_000,
    ]  # fmt: skip
    batch = UsageBatch(now_ms=to_millis(utc_now()), skew_ms=300_000)
    n = 0
    for name in base:
        for value in hostile:
            n += 1
            data = json.dumps({**base, name: value}).encode()  # \ud800 too
            batch.add((f"1-{n}".encode(), {b"data": data}))
    assert len(batch.acks) + len(batch.dead) == n


# 7. no stored value makes a record unreadable


async def test_a_bad_stored_last_use_shows_none_and_breaks_no_reply_nor_listing(
    client: TokenClient, service: Service, redis: Redis, keys: Keys
) -> None:
    ids = [await _generate(client, f"stored-{n}") for n in range(3)]
    for token_id, value in zip(ids, ["not-a-number", "99999999999999999999", "-5"], strict=True):
        await redis.hset(keys.token(token_id), "last_used_ms", value)
        view = await service.store.get(token_id)
        assert view is not None
        assert view.last_used_at is None
    page = await service.store.list_tokens()
    assert [v.id for v in page.tokens] == ids
    assert page.skipped == 0
    reply = await client.revoke(ids[0])  # the service's reply carries the view
    assert reply.ok
    assert reply.token is not None
    assert reply.token.status is TokenStatus.REVOKED


async def test_a_listing_skips_a_record_it_cannot_show_and_counts_it(
    client: TokenClient, service: Service, redis: Redis, keys: Keys
) -> None:
    ids = [await _generate(client, f"listed-{n}") for n in range(4)]
    await redis.hset(keys.token(ids[1]), "status", "haunted")
    await redis.hdel(keys.token(ids[2]), "name")
    page = await service.store.list_tokens()
    assert [v.id for v in page.tokens] == [ids[0], ids[3]]
    assert page.skipped == 2
    first = await service.store.list_tokens(limit=1)
    assert [v.id for v in first.tokens] == [ids[0]]
    assert first.next_cursor is not None
    rest = await service.store.list_tokens(cursor=first.next_cursor, limit=1)
    assert [v.id for v in rest.tokens] == [ids[3]]
    assert rest.skipped == 2
    assert [v.id for v in (await service.store.stale()).never_used] == [ids[0], ids[3]]


# 6. a token in a usage entry is deleted, and the file rewritten when it was real
