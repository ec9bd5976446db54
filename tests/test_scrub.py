"""Rewriting the append-only file after a token was deleted: only when it exists, coalesced."""

from __future__ import annotations

import io
from collections.abc import Iterator

import orjson
import pytest
from redis.asyncio import Redis

from tests.conftest import wait_for
from token_service.embedded import EmbeddedRedis
from token_service.scrub import AofScrubber


@pytest.fixture(scope="module")
def aof_server() -> Iterator[EmbeddedRedis]:
    """A Redis with the append-only file on, and a user that may not rewrite it."""
    server = EmbeddedRedis.start(
        appendonly=True,
        extra_args=(
            "--user",
            "narrow",
            "on",
            "nopass",
            "~*",
            "&*",
            "+@all",
            "-bgrewriteaof",
            "-info",
        ),
    )
    yield server
    server.stop()


async def _rewrites(redis: Redis) -> int:
    return int((await redis.info("persistence"))["aof_rewrites"])


async def test_many_requests_make_few_rewrites_each_after_the_request(
    aof_server: EmbeddedRedis,
) -> None:
    redis = Redis.from_url(aof_server.url)
    try:
        before = await _rewrites(redis)
        scrubber = AofScrubber(redis, min_interval_s=0.3, retry_s=0.02)
        for _ in range(20):
            scrubber.request()
        await wait_for(lambda: _true(scrubber.idle), limit_s=10)
        assert scrubber.rewrites == 1
        scrubber.request()  # a later request still gets a rewrite of its own
        await wait_for(lambda: _true(scrubber.idle), limit_s=10)
        await scrubber.close()
        assert scrubber.rewrites == 2
        assert await _rewrites(redis) - before >= 2
    finally:
        await redis.aclose()


async def test_no_rewrite_when_the_append_only_file_is_off(redis_server: EmbeddedRedis) -> None:
    redis = Redis.from_url(redis_server.url)
    try:
        scrubber = AofScrubber(redis, min_interval_s=0)
        scrubber.request()
        await wait_for(lambda: _true(scrubber.idle), limit_s=10)
        await scrubber.close()
    finally:
        await redis.aclose()
    assert scrubber.rewrites == 0
    assert not (redis_server.directory / "appendonlydir").exists()


async def test_a_user_without_the_permission_is_told_what_to_grant(
    aof_server: EmbeddedRedis, captured_logs: io.StringIO
) -> None:
    redis = Redis.from_url(aof_server.url, username="narrow", password="")
    try:
        scrubber = AofScrubber(redis, min_interval_s=0)
        scrubber.request()
        await wait_for(lambda: _true(scrubber.idle), limit_s=10)
        await scrubber.close()
    finally:
        await redis.aclose()
    assert scrubber.rewrites == 0
    lines = [orjson.loads(line) for line in captured_logs.getvalue().splitlines()]
    denied = [line for line in lines if line.get("event") == "aof_rewrite_not_permitted"]
    assert denied
    assert denied[-1]["grant"] == "+bgrewriteaof"


async def _true(value: bool) -> bool:
    return value
