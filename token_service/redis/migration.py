"""Moving a Redis of layout 1 to the current key layout (``token_service.keys``), at start-up.

Layout 1 kept, per token, a zset of its live secrets (``{p}:token:<id>:secrets``), a
string per name (``{p}:name:<name>``) and per issued secret (``{p}:digest:<sha256>``),
and every id in a zset (``{p}:index``). Layout 2 keeps the current secret in the record,
secrets in a grace period in ``{p}:token:<id>:grace``, names and issued secrets in
buckets, and the ids in a list: about a third less memory per token (README, "Memory").

The token service runs :func:`migrate_layout` at every start, before it handles a
command; once a run has finished, ``{p}:layout`` says so and later starts skip it. Each
step is one Redis function that moves what it finds and deletes what it moved, so the
migration may stop anywhere and run again, and several processes may run it at once.
Processes of the version before must be stopped first: what they write in layout 1
meanwhile is moved only if the marker is deleted and the service started again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from token_service.keys import Keys

__all__ = ["LAYOUT", "Migrated", "migrate_layout"]

LAYOUT = "2"
"""The layout this code reads and writes, as ``{p}:layout`` records it."""
_TOKENS_PER_CALL = 500
_DIGESTS_PER_CALL = 1_000


@dataclass(frozen=True, slots=True)
class Migrated:
    """What one run moved: tokens (secrets, name, id) and issued-secret keys."""

    tokens: int = 0
    issued: int = 0


async def _move_tokens(redis: Redis, keys: Keys) -> int:
    moved = 0
    while True:
        now_ms = int(time.time() * 1000)
        args = (keys.prefix, _TOKENS_PER_CALL, now_ms)
        step = int(
            await redis.fcall("tokens_migrate_tokens", 2, f"{keys.prefix}:index", keys.ids, *args)
        )
        if not step:
            return moved
        moved += step


async def _move_issued(redis: Redis, keys: Keys) -> int:
    old = f"{keys.prefix}:digest:"
    moved = 0
    digests: list[str] = []

    async def flush() -> int:
        if not digests:
            return 0
        count = int(await redis.fcall("tokens_migrate_issued", 0, keys.prefix, *digests))
        digests.clear()
        return count

    async for key in redis.scan_iter(match=f"{old}*", count=_DIGESTS_PER_CALL):
        name = key.decode() if isinstance(key, bytes) else cast(str, key)
        digests.append(name[len(old) :])
        if len(digests) >= _DIGESTS_PER_CALL:
            moved += await flush()
    return moved + await flush()


async def migrate_layout(redis: Redis, keys: Keys) -> Migrated:
    """Move whatever is still in layout 1 to the current layout, unless done before."""
    marker = await redis.get(keys.layout)
    if (marker.decode() if isinstance(marker, bytes) else marker) == LAYOUT:
        return Migrated()
    migrated = Migrated(await _move_tokens(redis, keys), await _move_issued(redis, keys))
    await redis.set(keys.layout, LAYOUT)
    return migrated
