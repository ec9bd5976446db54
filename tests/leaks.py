"""Looking for plaintext tokens where none may be: every key, entry, log line and file.

Text is searched as written and with JSON ``\\u`` escapes decoded: ``tok\\u005f…`` is a
token to anything that reads the JSON, even escaped twice inside an envelope.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from redis.asyncio import Redis

from contracts.token_format import decode_json_escapes, find_tokens


def _tokens(text: str) -> list[str]:
    return find_tokens(decode_json_escapes(text), glued=True)


async def _values(redis: Redis, key: bytes) -> list[str]:
    kind = cast(bytes, await redis.type(key)).decode()
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
            for _, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(key))
            for pair in fields.items()
            for item in pair
        ]
    else:
        found = []
    return [v.decode("utf-8", "replace") for v in (key, *found) if v is not None]


async def tokens_in_redis(url: str, match: str = "*") -> list[tuple[str, str]]:
    """``(key, token)`` for every well-formed token in any key name or value."""
    leaks: list[tuple[str, str]] = []
    redis = Redis.from_url(url)  # bytes: some entries are deliberately not UTF-8
    try:
        async for key in redis.scan_iter(match=match, count=1000):
            name = key.decode("utf-8", "replace")
            for text in await _values(redis, key):
                leaks.extend((name, t) for t in _tokens(text))
    finally:
        await redis.aclose()
    return leaks


def tokens_in_lines(lines: Iterable[str]) -> list[str]:
    """Every well-formed token in some lines of text (log output, say)."""
    return [token for line in lines for token in _tokens(line)]


def tokens_in_files(paths: Iterable[Path]) -> list[tuple[str, str]]:
    """``(file name, token)`` for every well-formed token in some files' raw bytes."""
    leaks: list[tuple[str, str]] = []
    for path in paths:
        # Latin-1 keeps every byte as one character: a token is found whatever surrounds it.
        text = path.read_bytes().decode("latin-1")
        leaks.extend((path.name, token) for token in _tokens(text))
    return leaks


async def aof_settled(redis: Redis) -> bool:
    """True when Redis neither runs nor has scheduled a rewrite of its append-only file."""
    info = await redis.info("persistence")
    return not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]
