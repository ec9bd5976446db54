"""Server-assisted client-side caching: the connection on which Redis reports writes.

One dedicated connection speaks RESP3 and asks for ``CLIENT TRACKING on BCAST PREFIX
<prefix>:secret:``: from its ``OK`` on, every change to a secret key (a write, a
deletion, an expiry, a TTL change) is pushed to it as ``invalidate [keys]``, and a
FLUSHALL or FLUSHDB as ``invalidate`` with no keys. Redis sends a broadcast
invalidation before it goes back to waiting, so before the reply to anything that came
after the write, such as the service's reply to the revoke.

redis-py's asyncio client has no client-side caching of its own (redis-py issue 3916),
so this is built on its connection: the parser hands the pushes back (a handler set on
it), and this module reads them.

The cache serves only while this connection is known good. It counts as lost when the
socket closes or errs (a CLIENT KILL, a Redis restart) and when Redis is silent for
``heartbeat_s`` and then does not answer a PING within ``heartbeat_s`` more (a dead
link that closes nothing). Then the cache is emptied and bypassed, and the connection is
made again, with growing pauses, until tracking is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from token_service.gateway.cache import SecretCache

__all__ = ["Tracking"]

_log = logging.getLogger("token_service.gateway.tracking")

_FIRST_PAUSE_S = 0.05
_LONGEST_PAUSE_S = 5.0


async def _pass_back(push: Any) -> Any:
    # redis-py drops an invalidation push unless a handler takes it; this one returns
    # it to the reader, as `read_response(push_request=True)`'s reply.
    return push


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class TrackingLost(ConnectionError):
    """Redis stopped answering the tracking connection."""


class Tracking:
    """Keeps one tracking connection for a :class:`SecretCache`, reconnecting as needed."""

    def __init__(
        self, redis: Redis, prefix: str, cache: SecretCache, *, heartbeat_s: float
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._cache = cache
        self._heartbeat_s = heartbeat_s
        self._task: asyncio.Task[None] | None = None
        self._connection: AbstractConnection | None = None
        self._live = asyncio.Event()
        self._closed = False
        self.connections = 0
        """How many times tracking was set up (1 unless it was lost and came back)."""

    @property
    def started(self) -> bool:
        """Whether the background task runs."""
        return self._task is not None

    def start(self) -> None:
        """Set tracking up in the background, and keep it up until :meth:`close`."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tracking")

    async def wait_live(self, timeout_s: float) -> bool:
        """Whether tracking is up, waiting up to ``timeout_s`` for it."""
        self.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._live.wait()
        return self._cache.live

    async def close(self) -> None:
        """Stop tracking for good and close the connection; the cache is emptied."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._cache.tracking_down()

    async def _run(self) -> None:
        pause, failures = _FIRST_PAUSE_S, 0
        while True:
            try:
                connection = await self._connect()
                self._cache.tracking_up()
                self._live.set()
                self.connections += 1
                if failures:
                    _log.info("verdict cache: tracking is back, the cache serves again")
                pause, failures = _FIRST_PAUSE_S, 0
                await self._listen(connection)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever it was, nothing kept can be trusted
                failures += 1
                if failures == 1:  # once per outage, not once per attempt
                    _log.warning(
                        "verdict cache: no tracking (%s: %s); the cache is emptied and "
                        "every check goes to Redis until tracking is back",
                        type(exc).__name__,
                        exc,
                    )
            finally:
                self._live.clear()
                self._cache.tracking_down()
                await self._disconnect()
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE_S)

    async def _connect(self) -> AbstractConnection:
        pool = self._redis.connection_pool
        options = dict(pool.connection_kwargs)
        # Its own connection, never the pool's: tracking belongs to the connection that
        # asked for it. Maintenance notices would be pushes of their own, and a moved
        # endpoint only drops this connection, which is then made again.
        options.pop("maint_notifications_pool_handler", None)
        if "maint_notifications_config" in options:
            options["maint_notifications_config"] = None
        connection: AbstractConnection = pool.connection_class(**{**options, "protocol": 3})
        self._connection = connection
        async with asyncio.timeout(self._heartbeat_s * 2):
            await connection.connect()  # type: ignore[no-untyped-call]
            parser: Any = connection._parser
            parser.set_invalidation_push_handler(_pass_back)
            await connection.send_command(
                "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", self._prefix, check_health=False
            )
            reply = await connection.read_response()
        if _text(reply) != "OK":
            raise TrackingLost(f"CLIENT TRACKING answered {reply!r}")
        return connection

    async def _listen(self, connection: AbstractConnection) -> None:
        waiting_for_pong = False
        while True:
            # With a timeout, a silent read answers None rather than raise.
            reply = await connection.read_response(timeout=self._heartbeat_s, push_request=True)
            if reply is None:
                if waiting_for_pong:
                    raise TrackingLost(f"no answer to PING within {self._heartbeat_s:g}s")
                await connection.send_command("PING", check_health=False)
                waiting_for_pong = True
            elif isinstance(reply, list) and reply and _text(reply[0]) == "invalidate":
                keys = reply[1] if len(reply) > 1 else None
                self._cache.invalidate(None if keys is None else [_text(k) for k in keys])
            else:
                waiting_for_pong = False  # PONG, or anything else Redis had to say

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect()
