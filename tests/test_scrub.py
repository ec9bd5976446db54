"""Rewriting the append-only file after a token was deleted: only when it exists, coalesced."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any, cast

import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tests.conftest import wait_for
from tests.leaks import aof_settled
from token_service.leaks.aof import AofScrubber
from token_service.redis.embedded import EmbeddedRedis


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


@pytest.fixture
def slow_rewrite_server() -> Iterator[EmbeddedRedis]:
    """A Redis whose rewrites take about a second: 100 ms for each of its ten keys."""
    server = EmbeddedRedis.start(appendonly=True, extra_args=("--rdb-key-save-delay", "100000"))
    yield server
    server.stop()


async def _start_a_slow_rewrite(redis: Redis) -> int:
    await redis.mset({f"k{n}": "v" for n in range(10)})
    before = await _rewrites(redis)
    await redis.bgrewriteaof()
    return before


def _events(captured_logs: io.StringIO, event: str) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in captured_logs.getvalue().splitlines()]
    return [line for line in lines if line.get("event") == event]


async def test_a_request_made_while_a_rewrite_runs_survives_a_close(
    slow_rewrite_server: EmbeddedRedis,
) -> None:
    redis = Redis.from_url(slow_rewrite_server.url)
    try:
        before = await _start_a_slow_rewrite(redis)
        scrubber = AofScrubber(redis, min_interval_s=0, retry_s=0.05, close_wait_s=10)
        scrubber.request()
        await asyncio.sleep(0.2)  # told "already in progress" by now, and waiting
        assert scrubber.wanted
        await scrubber.close()  # must still ask, once the running rewrite is over
        assert scrubber.rewrites == 1
        assert not scrubber.wanted
        await wait_for(lambda: aof_settled(redis), limit_s=10)
        assert await _rewrites(redis) - before == 2
    finally:
        await redis.aclose()


async def test_a_request_that_cannot_be_served_at_close_is_logged_as_dropped(
    slow_rewrite_server: EmbeddedRedis, captured_logs: io.StringIO
) -> None:
    redis = Redis.from_url(slow_rewrite_server.url)
    try:
        await _start_a_slow_rewrite(redis)
        scrubber = AofScrubber(redis, min_interval_s=0, retry_s=0.05, close_wait_s=0.1)
        scrubber.request()
        await asyncio.sleep(0.1)
        await scrubber.close()
        await wait_for(lambda: aof_settled(redis), limit_s=10)
    finally:
        await redis.aclose()
    assert scrubber.rewrites == 0
    (dropped,) = _events(captured_logs, "aof_rewrite_dropped")[-1:]
    assert dropped["requests"] == 1
    assert "BGREWRITEAOF" in dropped["action"]


class _FailingFirst:
    """A real Redis client whose first BGREWRITEAOF calls fail as a failed fork would."""

    def __init__(self, redis: Redis, failures: int) -> None:
        self.redis = redis
        self.failures = failures

    async def info(self, section: str) -> Any:
        return await self.redis.info(section)

    async def bgrewriteaof(self) -> Any:
        if self.failures:
            self.failures -= 1
            raise ResponseError("Can't execute an AOF background rewriting")
        return await self.redis.bgrewriteaof()


async def test_other_errors_are_retried_with_backoff_until_a_rewrite_starts(
    aof_server: EmbeddedRedis, captured_logs: io.StringIO
) -> None:
    redis = Redis.from_url(aof_server.url)
    try:
        await wait_for(lambda: aof_settled(redis), limit_s=10)
        before = await _rewrites(redis)
        flaky = _FailingFirst(redis, failures=3)
        scrubber = AofScrubber(cast(Redis, flaky), min_interval_s=0, retry_s=0.01)
        scrubber.request()
        await wait_for(lambda: _true(scrubber.idle), limit_s=10)
        await scrubber.close()
        await wait_for(lambda: aof_settled(redis), limit_s=10)
        assert await _rewrites(redis) - before == 1
    finally:
        await redis.aclose()
    assert scrubber.rewrites == 1
    delays = [line["retry_in_s"] for line in _events(captured_logs, "aof_rewrite_retry")[-3:]]
    assert delays == [0.02, 0.04, 0.08]


async def _true(value: bool) -> bool:
    return value
