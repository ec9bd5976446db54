"""Token state as layout 1 kept it (before ``token_service.redis.migration``), written by
hand the way that version's functions wrote it, for the migration tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from ulid import ULID

from contracts import format_timestamp, to_millis, utc_now
from contracts.token_format import hint, mint, secret_digest
from token_service.keys import Keys

__all__ = ["V1Token", "v1_generate", "v1_revoke", "v1_rotate"]

INF = float("inf")


@dataclass
class V1Token:
    """A token written in layout 1, with its secrets (current last)."""

    token_id: str
    name: str
    secrets: list[str] = field(default_factory=list)


def _old(keys: Keys, kind: str, rest: str) -> str:
    return f"{keys.prefix}:{kind}:{rest}"


async def v1_generate(
    redis: Redis, keys: Keys, name: str, created: datetime, expires: datetime | None = None
) -> V1Token:
    """As layout 1's ``generate``: record with id and created_at, a string per name and
    per issued secret, the live secrets zset, the index zset."""
    token_id, secret = str(ULID.from_datetime(created)), mint()
    digest = secret_digest(secret)
    record: dict[Any, str] = {
        "id": token_id,
        "name": name,
        "scopes": "entities:read",
        "status": "active",
        "created_at": format_timestamp(created),
        "created_by": "alice",
        "hint": hint(secret),
    }
    lookup: dict[Any, str] = {"token_id": token_id, "scopes": "entities:read"}
    name_key = _old(keys, "name", name.lower())
    if expires is not None:
        record |= {"expires_at": format_timestamp(expires), "expires_ms": str(to_millis(expires))}
        lookup["expires_at"] = str(to_millis(expires))
    await redis.hset(keys.token(token_id), mapping=record)
    await redis.hset(keys.secret(digest), mapping=lookup)
    await redis.set(name_key, token_id)
    await redis.set(_old(keys, "digest", digest), token_id)
    await redis.zadd(f"{keys.token(token_id)}:secrets", {digest: INF})
    await redis.zadd(f"{keys.prefix}:index", {token_id: to_millis(created)})
    if expires is not None:
        await redis.pexpireat(keys.secret(digest), to_millis(expires))
        await redis.pexpireat(name_key, to_millis(expires))
        await redis.zadd(keys.expiries, {token_id: to_millis(expires)})
    return V1Token(token_id, name, [secret])


async def v1_rotate(redis: Redis, keys: Keys, token: V1Token, grace: timedelta) -> None:
    """As layout 1's ``rotate``: the old secret in the zset until its grace ends."""
    old, secret = secret_digest(token.secrets[-1]), mint()
    digest = secret_digest(secret)
    grace_end = to_millis(utc_now() + grace)
    await redis.pexpireat(keys.secret(old), grace_end)
    await redis.zadd(f"{keys.token(token.token_id)}:secrets", {old: grace_end, digest: INF})
    await redis.hset(
        keys.secret(digest), mapping={"token_id": token.token_id, "scopes": "entities:read"}
    )
    await redis.set(_old(keys, "digest", digest), token.token_id)
    now = format_timestamp(utc_now())
    await redis.hset(keys.token(token.token_id), mapping={"rotated_at": now, "hint": hint(secret)})
    token.secrets.append(secret)


async def v1_revoke(redis: Redis, keys: Keys, token: V1Token) -> None:
    """As layout 1's ``revoke``: secrets, zset and name gone, the record marked."""
    for secret in token.secrets:
        await redis.delete(keys.secret(secret_digest(secret)))
    await redis.delete(f"{keys.token(token.token_id)}:secrets")
    await redis.delete(_old(keys, "name", token.name.lower()))
    await redis.zrem(keys.expiries, token.token_id)
    now = format_timestamp(utc_now())
    await redis.hset(
        keys.token(token.token_id),
        mapping={"status": "revoked", "revoked_at": now, "revoked_by": "alice"},
    )
