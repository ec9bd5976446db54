"""Helpers for the fault suite: a publisher that outlives Redis, and readers of the outcome.

The publisher is what a careful admin-side program does: it XADDs a command with a
``reply_to`` channel and, when no reply comes in time or Redis cannot be reached, sends
the very same command (same ``command_id``) again until one does. Its reply listener
subscribes again by itself after losing its connection; a reply published while it was
away is lost, which the retry makes up for.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from contracts import CommandReply, TokenUsed, from_millis
from tests.conftest import ADMIN
from tests.streams import stream_data
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis

__all__ = [
    "Publisher",
    "applied_per_command",
    "durable_server",
    "generate",
    "until",
    "usage_entry",
]


def durable_server() -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own that fsyncs every write to its append-only file."""
    server = EmbeddedRedis.start(appendonly=True, appendfsync="always")
    assert server.kind == "redis-server", "fault tests need a real redis-server"
    try:
        yield server
    finally:
        server.stop()


async def until(condition: Callable[[], Awaitable[bool]], limit_s: float, what: str) -> float:
    """Poll ``condition`` until it holds; fail the test naming ``what`` after ``limit_s``.

    Returns how long it took, in seconds.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        with contextlib.suppress(RedisError, OSError):
            if await condition():
                return loop.time() - started
        if loop.time() - started > limit_s:
            pytest.fail(f"{what}: not within {limit_s:g}s")
        await asyncio.sleep(0.05)


def generate(command_id: str, name: str | None = None) -> dict[str, Any]:
    """A ``GenerateToken`` command as a raw publisher writes it."""
    return {
        "type": "GenerateToken",
        "command_id": command_id,
        "actor": ADMIN,
        "name": name or command_id,
        "scopes": ["entities:read"],
    }


def usage_entry(token_id: str, used_ms: int, count: int) -> bytes:
    """One gateway report of ``count`` uses of a token."""
    return TokenUsed(
        token_id=token_id, actor="gw", used_at=from_millis(used_ms), count=count, gateway="gw"
    ).to_json()


@dataclass(slots=True)
class Sent:
    """What became of one command."""

    command: dict[str, Any]
    attempts: int = 0
    replies: list[CommandReply] = field(default_factory=list)


class Publisher:
    """Sends commands over raw XADD and retries each with its own id until it is answered.

    Use as ``async with Publisher(url, keys) as publisher``.
    """

    def __init__(self, url: str, keys: Keys, *, retry_s: float = 2.0) -> None:
        # Commands give up fast (a stalled Redis must not hang a send); the listener waits
        # as long as it takes, since an idle subscription is no fault.
        self._redis = Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0)
        )
        self._listen_redis = Redis.from_url(url, socket_connect_timeout=1.0)
        self.keys = keys
        self.retry_s = retry_s
        self.channel = f"{keys.prefix}:replies:{uuid.uuid4().hex[:8]}"
        self.sent: dict[str, Sent] = {}
        self.resubscribed = 0
        self._arrived: dict[str, asyncio.Event] = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def __aenter__(self) -> Publisher:
        self._listener = asyncio.create_task(self._listen())
        await asyncio.wait_for(self._subscribed.wait(), 10)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self._redis.aclose()
        await self._listen_redis.aclose()

    async def _listen(self) -> None:
        while True:
            pubsub = self._listen_redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                async for message in pubsub.listen():
                    reply = CommandReply.model_validate_json(message["data"])
                    sent = self.sent.get(reply.command_id or "")
                    if sent is not None:
                        sent.replies.append(reply)
                        self._arrived[sent.command["command_id"]].set()
            except (RedisError, OSError):
                self.resubscribed += 1
                await asyncio.sleep(0.2)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def send(self, command: dict[str, Any], limit_s: float = 60.0) -> CommandReply:
        """XADD ``command`` until a reply to its id comes; the first reply is returned."""
        command_id = command["command_id"]
        sent = self.sent.setdefault(command_id, Sent({**command, "reply_to": self.channel}))
        arrived = self._arrived.setdefault(command_id, asyncio.Event())
        deadline = asyncio.get_running_loop().time() + limit_s
        while not sent.replies:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no reply to {command_id} after {sent.attempts} attempts")
            arrived.clear()
            sent.attempts += 1
            try:
                await self._redis.xadd(self.keys.commands, {"data": orjson.dumps(sent.command)})
            except (RedisError, OSError):
                await asyncio.sleep(0.2)  # Redis away: the same command goes again
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), self.retry_s)
        return sent.replies[0]

    async def send_all(
        self, commands: list[dict[str, Any]], concurrency: int = 20, limit_s: float = 60.0
    ) -> list[CommandReply]:
        """Send many, ``concurrency`` at a time; replies in the order of ``commands``."""
        gate = asyncio.Semaphore(concurrency)

        async def one(command: dict[str, Any]) -> CommandReply:
            async with gate:
                return await self.send(command, limit_s)

        return list(await asyncio.gather(*(one(c) for c in commands)))

    def duplicates(self) -> int:
        """Replies that said the command had been handled before."""
        return sum(r.duplicate for sent in self.sent.values() for r in sent.replies)

    def retried(self) -> int:
        """Commands that had to be sent more than once."""
        return sum(sent.attempts > 1 for sent in self.sent.values())


async def applied_per_command(redis: Redis, keys: Keys) -> Counter[tuple[str, str]]:
    """How many lifecycle events each ``(event type, command_id)`` wrote."""
    return Counter(
        (event["type"], event["command_id"])
        for event in await stream_data(redis, keys.events)
        if event.get("command_id") is not None
    )
