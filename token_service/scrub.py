"""Getting a deleted token out of Redis's append-only file, not just out of memory.

A command that carries a plaintext token is refused and its stream entry deleted (XDEL).
That removes it from memory, but with ``appendonly yes`` the XADD that brought it in is
still written in the append-only file, and stays there until Redis rewrites the file
from memory. So after such a delete the service asks for ``BGREWRITEAOF``.

The rewrite must *start* after the delete: one already running was copying memory from
before it and would write the token into the new file. Redis answers "already in
progress" then, and the request is repeated until a rewrite starts (or is scheduled
after a running save). Requests are coalesced: at most one rewrite per ``min_interval_s``
however many tokens arrive, since each rewrite writes the whole data set. A Redis that
has the append-only file off keeps nothing to scrub, and is not asked (a rewrite there
would write a snapshot the operator did not want).

Redis permissions: ``BGREWRITEAOF``, and ``INFO`` to see whether the file is on; without
``INFO`` the rewrite is asked for anyway.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["AofScrubber"]

_log = structlog.get_logger("token_service.scrub")


class AofScrubber:
    """Asks Redis to rewrite its append-only file after entries holding a token were deleted."""

    def __init__(self, redis: Redis, *, min_interval_s: float = 2.0, retry_s: float = 0.25) -> None:
        self.redis = redis
        self.min_interval_s = min_interval_s
        self.retry_s = retry_s
        self.rewrites = 0
        """Rewrites Redis started (or scheduled) at this process's request."""
        self._wanted = False
        self._last_started = -float("inf")
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        """Ask for a rewrite that starts after now; returns at once."""
        self._wanted = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="aof-scrub")

    @property
    def idle(self) -> bool:
        """True when no rewrite is wanted or being asked for."""
        return not self._wanted and (self._task is None or self._task.done())

    async def close(self) -> None:
        """Stop waiting; a rewrite still wanted is asked for once, without waiting."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._wanted:
            self._wanted = False
            try:
                if await self._aof_enabled():
                    await self._ask_once()
            except Exception as exc:  # shutting down: say so, nothing more to do
                _log.warning("aof_rewrite_not_requested", error=str(exc))

    async def _run(self) -> None:
        while self._wanted:
            wait = self._last_started + self.min_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._wanted = False
            try:
                if await self._aof_enabled():
                    await self._rewrite()
            except NoPermissionError as exc:  # the ACL lacks +bgrewriteaof: say what to grant
                _log.warning("aof_rewrite_not_permitted", error=str(exc), grant="+bgrewriteaof")
            except (RedisConnectionError, RedisTimeoutError) as exc:
                _log.warning("aof_rewrite_retry", error=str(exc))
                self._wanted = True  # the token is still in the file: try again
                self._last_started = time.monotonic()
            except Exception:
                _log.exception("aof_rewrite_failed")

    async def _aof_enabled(self) -> bool:
        try:
            info = await self.redis.info("persistence")
        except NoPermissionError:
            return True
        return bool(int(info.get("aof_enabled", 1)))

    async def _rewrite(self) -> None:
        while True:  # until a rewrite starts after our delete
            if await self._ask_once():
                return
            await asyncio.sleep(self.retry_s)

    async def _ask_once(self) -> bool:
        """True when a rewrite started or is scheduled; False while an older one runs."""
        try:
            await self.redis.bgrewriteaof()
        except ResponseError as exc:
            if "already in progress" in str(exc):
                return False
            raise
        self._last_started = time.monotonic()
        self.rewrites += 1
        _log.info("aof_rewrite_requested", reason="a deleted entry held a token")
        return True
