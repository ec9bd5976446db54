"""Test helpers that read the service's streams and replies the way another program would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from contracts import CommandReply


async def entries(redis: Redis, stream: str) -> list[tuple[str, dict[str, str]]]:
    """Every entry of a stream, oldest first, from a client that decodes to str."""
    return cast(list[tuple[str, dict[str, str]]], await redis.xrange(stream))


async def stream_data(redis: Redis, stream: str) -> list[dict[str, Any]]:
    """Every entry's decoded ``data`` field, oldest first."""
    return [orjson.loads(fields["data"]) for _, fields in await entries(redis, stream)]


async def events_of(redis: Redis, stream: str, kind: str) -> list[dict[str, Any]]:
    """Events of one type."""
    return [e for e in await stream_data(redis, stream) if e["type"] == kind]


class Replies:
    """Replies published on one channel, by ``command_id``."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.received: list[CommandReply] = []
        self._arrived = asyncio.Event()

    def add(self, reply: CommandReply) -> None:
        """Record one reply."""
        self.received.append(reply)
        self._arrived.set()

    def for_command(self, command_id: str) -> list[CommandReply]:
        """Every reply to one command."""
        return [r for r in self.received if r.command_id == command_id]

    async def wait_for(self, command_id: str | None, limit_s: float = 5.0) -> CommandReply:
        """The first reply to ``command_id`` (``None``: to a command without a usable id)."""
        deadline = asyncio.get_running_loop().time() + limit_s
        while True:
            for reply in self.received:
                if reply.command_id == command_id:
                    return reply
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no reply to {command_id!r}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue

    async def wait_count(self, count: int, limit_s: float) -> None:
        """Until at least ``count`` distinct commands have a reply."""
        deadline = asyncio.get_running_loop().time() + limit_s
        while len({r.command_id for r in self.received}) < count:
            if asyncio.get_running_loop().time() > deadline:
                got = len({r.command_id for r in self.received})
                raise TimeoutError(f"{got} of {count} commands answered")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def listening(redis: Redis, channel: str) -> AsyncIterator[Replies]:
    """Subscribe to ``channel`` before anything is sent, and collect replies in the background."""
    replies = Replies(channel)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)

    async def pump() -> None:
        async for message in pubsub.listen():
            replies.add(CommandReply.model_validate_json(message["data"]))

    task = asyncio.create_task(pump())
    try:
        yield replies
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def send_raw(redis: Redis, stream: str, **fields: Any) -> str:
    """XADD an entry as given; dicts are JSON-encoded into ``data``."""
    encoded: dict[Any, Any] = {
        k: orjson.dumps(v) if isinstance(v, dict) else v for k, v in fields.items()
    }
    return cast(str, await redis.xadd(stream, encoded))
