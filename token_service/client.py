"""``TokenClient``: send commands to the token service and await their replies.

It subscribes to one reply channel of its own before sending anything
(``tokens:replies:<publisher>:<128 random bits>``), writes each command to its
publisher's stream ``tokens:commands:<publisher>`` (or, without a publisher, to version
1's shared ``tokens:commands``) with that channel as ``reply_to``, and matches replies by
``command_id``. A retry with the same ``command_id`` is safe: the service applies a
command at most once and answers a repeat with ``"duplicate": true``.

Writes wait for a slot rather than take more connections than the client's pool holds,
so any number of concurrent calls may share one client with its default pool.

When the connection to Redis drops, the listener subscribes again by itself, backing off
while Redis stays away (through Sentinel, on the new primary after a failover). Sends wait
until it listens again, and once it does it sends again every command still waiting for
its reply, with the same ``command_id``: a reply published while it was away is lost
(pub/sub keeps nothing), and the service answers the repeat with the duplicate reply
(which, for a ``GenerateToken``, no longer carries the secret: the token exists, its
secret was lost with the reply; revoke it and generate another).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime
from types import TracebackType
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from contracts import CommandReply, GenerateToken, RevokeToken, RotateToken, UpdateToken
from contracts.commands import AnyCommand
from token_service.keys import Keys
from token_service.publishers import SHARED

__all__ = ["ReplyTimeout", "TokenClient"]


class ReplyTimeout(TimeoutError):
    """No reply came in time: the service may be down or behind."""

    def __init__(self, command_id: str, seconds: float) -> None:
        super().__init__(
            f"no reply to command {command_id!r} within {seconds:g}s: is the token service "
            "running? (start it with `make run`)"
        )
        self.command_id = command_id


class TokenClient:
    """An async client for one actor; use it as ``async with TokenClient(...) as client``."""

    def __init__(
        self,
        redis: Redis,
        *,
        actor: str,
        key_prefix: str = "tokens",
        timeout: float = 5.0,
        publisher: str | None = None,
    ) -> None:
        self.redis = redis
        self.actor = actor
        self.keys = Keys(key_prefix)
        self.timeout = timeout
        self.publisher = publisher
        """The registered publisher this client writes as; ``None``: version 1's shared stream."""
        self.stream = (
            self.keys.commands if publisher is None else self.keys.publisher_commands(publisher)
        )
        # 128 random bits, under this publisher's prefix: no other publisher may listen there.
        self.channel = self.keys.reply_channel(publisher or SHARED, uuid.uuid4().hex)
        self._waiting: dict[str, asyncio.Future[CommandReply]] = {}
        self._sent: dict[str, str] = {}
        """What was written for each command still waiting for its reply: sent again when
        the listener comes back, since its reply may have been published meanwhile."""
        self._listening = asyncio.Event()
        self._writers = asyncio.Semaphore(_write_slots(redis))
        self._listener: asyncio.Task[None] | None = None
        self._closing = False
        self.resubscribed = 0
        """How many times the listener lost Redis and subscribed again."""

    async def __aenter__(self) -> TokenClient:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel)  # before any send: no reply can come too early
        self._listening.set()
        self._listener = asyncio.create_task(self._listen(pubsub))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._closing = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def _listen(self, pubsub: PubSub) -> None:
        backoff_s = 0.1
        while not self._closing:
            try:
                if not pubsub.subscribed:
                    await pubsub.subscribe(self.channel)
                    self.resubscribed += 1
                    self._listening.set()
                    backoff_s = 0.1
                    await self._send_again()
                async for message in pubsub.listen():
                    self._deliver(message["data"])
            except (RedisError, OSError):
                # Redis went away (or is not back yet): a fresh connection, after a pause
                self._listening.clear()
                await _close_quietly(pubsub)
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 2.0)
            finally:
                if self._closing:
                    await _close_quietly(pubsub)

    async def _send_again(self) -> None:
        for data in list(self._sent.values()):
            async with self._writers:
                await self.redis.xadd(self.stream, {"data": data})

    def _deliver(self, data: Any) -> None:
        try:
            reply = CommandReply.model_validate_json(data)
        except ValueError:  # not a reply of ours: ignore it, keep listening
            return
        waiter = self._waiting.get(reply.command_id or "")
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    def _new_id(self) -> str:
        return f"{self.actor[:32]}-{uuid.uuid4().hex}"

    async def send(self, command: AnyCommand) -> CommandReply:
        """Send one command and wait for its reply, raising :class:`ReplyTimeout` if none."""
        if self._listener is None:
            raise RuntimeError("use TokenClient in `async with` before sending")
        command = command.model_copy(update={"reply_to": self.channel})
        waiter: asyncio.Future[CommandReply] = asyncio.get_running_loop().create_future()
        self._waiting[command.command_id] = waiter
        # Fields left unset stay off the wire: a service of an earlier 2.x, which does not
        # know a field added since, still reads the command.
        data = command.model_dump_json(exclude_none=True)
        try:
            # A reply is published once: send only while listening for it.
            await asyncio.wait_for(self._listening.wait(), self.timeout)
            self._sent[command.command_id] = data
            async with self._writers:  # never more writes at once than the pool can hold
                await self.redis.xadd(self.stream, {"data": data})
            return await asyncio.wait_for(waiter, self.timeout)
        except TimeoutError:
            raise ReplyTimeout(command.command_id, self.timeout) from None
        finally:
            self._waiting.pop(command.command_id, None)
            self._sent.pop(command.command_id, None)

    async def generate(
        self,
        name: str,
        scopes: list[str],
        *,
        description: str | None = None,
        expires_at: datetime | None = None,
        allowed_cidrs: list[str] | None = None,
        command_id: str | None = None,
    ) -> CommandReply:
        """Generate a token; the reply's ``secret`` is the only copy of it."""
        fields: dict[str, Any] = {
            "description": description,
            "expires_at": expires_at,
            "allowed_cidrs": allowed_cidrs,
        }
        return await self.send(
            GenerateToken(
                command_id=command_id or self._new_id(),
                actor=self.actor,
                name=name,
                scopes=scopes,
                **fields,
            )
        )

    async def revoke(
        self, token_id: str, *, reason: str | None = None, command_id: str | None = None
    ) -> CommandReply:
        """Revoke a token at once."""
        return await self.send(
            RevokeToken(
                command_id=command_id or self._new_id(),
                actor=self.actor,
                token_id=token_id,
                reason=reason,
            )
        )

    async def rotate(
        self, token_id: str, *, grace_seconds: int = 0, command_id: str | None = None
    ) -> CommandReply:
        """Give a token a new secret; the old one works for ``grace_seconds`` more."""
        return await self.send(
            RotateToken(
                command_id=command_id or self._new_id(),
                actor=self.actor,
                token_id=token_id,
                grace_seconds=grace_seconds,
            )
        )

    async def update(
        self,
        token_id: str,
        *,
        description: str | None = None,
        allowed_cidrs: list[str] | None = None,
        command_id: str | None = None,
    ) -> CommandReply:
        """Change a token's description or allowlist (``None``: as it is; ``''`` or ``[]``:
        remove it); the secret stays the same."""
        return await self.send(
            UpdateToken(
                command_id=command_id or self._new_id(),
                actor=self.actor,
                token_id=token_id,
                description=description,
                allowed_cidrs=allowed_cidrs,
            )
        )


def _write_slots(redis: Redis) -> int:
    # The pool serves the caller too, and the listener holds one connection for good: leave
    # half of it to them. Waiting for a slot here beats failing with MaxConnectionsError.
    size = getattr(redis.connection_pool, "max_connections", None) or 100
    return max(1, min(64, (int(size) - 1) // 2))


async def _close_quietly(pubsub: PubSub) -> None:
    with contextlib.suppress(RedisError, OSError):
        await pubsub.aclose()  # type: ignore[no-untyped-call]
