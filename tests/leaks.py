"""Looking for plaintext tokens where none may be: every key, every entry, every log line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

from contracts.token_format import find_tokens


async def _values(redis: Redis, key: str) -> list[str]:
    kind = await redis.type(key)
    found: list[Any]
    if kind == "string":
        found = [await redis.get(key)]
    elif kind == "hash":
        found = [item for pair in (await redis.hgetall(key)).items() for item in pair]
    elif kind == "set":
        found = list(await redis.smembers(key))
    elif kind == "zset":
        found = list(await redis.zrange(key, 0, -1))
    elif kind == "list":
        found = list(await redis.lrange(key, 0, -1))
    elif kind == "stream":
        found = [
            item
            for _, fields in await redis.xrange(key)
            for pair in fields.items()
            for item in pair
        ]
    else:
        found = []
    return [key, *(str(v) for v in found if v is not None)]


async def tokens_in_redis(redis: Redis, match: str = "*") -> list[tuple[str, str]]:
    """``(key, token)`` for every well-formed token in any key name or value."""
    leaks: list[tuple[str, str]] = []
    async for key in redis.scan_iter(match=match, count=1000):
        for text in await _values(redis, key):
            leaks.extend((key, token) for token in find_tokens(text))
    return leaks


def tokens_in_lines(lines: Iterable[str]) -> list[str]:
    """Every well-formed token in some lines of text (log output, say)."""
    return [token for line in lines for token in find_tokens(line)]
