"""The token store's read API: one token, listings by status with a cursor, the stale report."""

from __future__ import annotations

from datetime import timedelta

from redis.asyncio import Redis

from contracts import TokenStatus, utc_now
from token_service.app import Service
from token_service.client import TokenClient
from token_service.keys import Keys


async def test_get_returns_the_view_or_none(client: TokenClient, service: Service) -> None:
    created = await client.generate("readable", ["entities:read"], description="d")
    assert created.token is not None
    assert await service.store.get(created.token.id) == created.token
    assert await service.store.get("01NOSUCHTOKEN") is None


async def test_listing_pages_by_cursor_and_filters_by_status(
    client: TokenClient, service: Service
) -> None:
    ids = []
    for n in range(7):
        reply = await client.generate(f"listed-{n}", ["entities:read"])
        assert reply.token is not None
        ids.append(reply.token.id)
    await client.revoke(ids[1])
    await client.revoke(ids[4])
    seen: list[str] = []
    cursor: int | None = 0
    while cursor is not None:
        page = await service.store.list_tokens(TokenStatus.ACTIVE, cursor, limit=2)
        assert len(page.tokens) <= 2
        seen += [view.id for view in page.tokens]
        cursor = page.next_cursor
    assert seen == [ids[n] for n in (0, 2, 3, 5, 6)]
    revoked = await service.store.list_tokens(TokenStatus.REVOKED)
    assert [view.id for view in revoked.tokens] == [ids[1], ids[4]]
    assert revoked.next_cursor is None
    everything = await service.store.list_tokens(limit=100)
    assert len(everything.tokens) == 7


async def test_stale_report_finds_unused_and_expiring_tokens(
    client: TokenClient, service: Service, redis: Redis, keys: Keys
) -> None:
    never = await client.generate("never-used", ["entities:read"])
    old = await client.generate("long-unused", ["entities:read"])
    fresh = await client.generate("used-today", ["entities:read"])
    soon = await client.generate(
        "expiring", ["entities:read"], expires_at=utc_now() + timedelta(days=3)
    )
    for reply, days_ago in ((old, 120), (fresh, 0), (soon, 1)):
        assert reply.token is not None
        used = utc_now() - timedelta(days=days_ago)
        await redis.hset(
            keys.token(reply.token.id), "last_used_ms", str(int(used.timestamp() * 1000))
        )
    report = await service.store.stale(unused_days=90, expiring_days=14)
    assert never.token is not None
    assert old.token is not None
    assert soon.token is not None
    assert [v.id for v in report.never_used] == [never.token.id]
    assert [v.id for v in report.unused] == [old.token.id]
    assert [v.id for v in report.expiring] == [soon.token.id]
