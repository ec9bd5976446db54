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

A request is kept until Redis accepts a rewrite that starts after it: any other error
(Redis unreachable, a fork that failed) is retried, waiting twice as long each time up
to ``max_backoff_s``. Only a user without the permission gives up, saying what to grant.
On :meth:`AofScrubber.close` a request still open is tried for ``close_wait_s`` more and,
if Redis still has not accepted it, logged as dropped: an operator then runs BGREWRITEAOF.

Redis permissions: ``BGREWRITEAOF``, and ``INFO`` to see whether the file is on; without
``INFO`` the rewrite is asked for anyway.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, ResponseError

__all__ = ["AofScrubber"]

_log = structlog.get_logger("token_service.leaks.aof")


class AofScrubber:
    """Asks Redis to rewrite its append-only file after entries holding a token were deleted."""

    def __init__(
        self,
        redis: Redis,
        *,
        min_interval_s: float = 2.0,
        retry_s: float = 0.25,
        max_backoff_s: float = 30.0,
        close_wait_s: float = 1.0,
    ) -> None:
        self.redis = redis
        self.min_interval_s = min_interval_s
        self.retry_s = retry_s
        self.max_backoff_s = max_backoff_s
        self.close_wait_s = close_wait_s
        self.rewrites = 0
        """Rewrites Redis started (or scheduled) at this process's request."""
        self._requested = 0  # requests so far
        self._covered = 0  # requests that a rewrite Redis accepted started after
        self._failures = 0  # errors in a row, for the backoff
        self._last_started = -float("inf")
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        """Ask for a rewrite that starts after now; returns at once."""
        self._requested += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="aof-scrub")

    @property
    def wanted(self) -> bool:
        """True while a request waits for a rewrite that Redis accepted."""
        return self._covered < self._requested

    @property
    def idle(self) -> bool:
        """True when no rewrite is wanted or being asked for."""
        return not self.wanted and (self._task is None or self._task.done())

    async def close(self) -> None:
        """Stop; a rewrite still wanted is asked for during ``close_wait_s``, else logged."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        deadline = time.monotonic() + self.close_wait_s
        while self.wanted:
            try:
                if await self._attempt() or time.monotonic() >= deadline:
                    break
            except Exception as exc:  # shutting down: say so below
                _log.warning("aof_rewrite_not_requested", error=str(exc))
                break
            await asyncio.sleep(self.retry_s)
        if self.wanted:
            _log.error(
                "aof_rewrite_dropped",
                requests=self._requested - self._covered,
                action="a deleted entry held a token: run BGREWRITEAOF once none is running",
            )

    async def _run(self) -> None:
        while self.wanted:
            wait = self._last_started + self.min_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                accepted = await self._attempt()
            except NoPermissionError as exc:  # the ACL lacks +bgrewriteaof: say what to grant
                _log.warning("aof_rewrite_not_permitted", error=str(exc), grant="+bgrewriteaof")
                self._covered = self._requested  # asking again cannot help
                continue
            except Exception as exc:  # the token is still in the file: try again, later
                self._failures += 1
                delay = min(self.retry_s * 2**self._failures, self.max_backoff_s)
                _log.warning("aof_rewrite_retry", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                continue
            self._failures = 0
            if not accepted:  # an older rewrite still runs
                await asyncio.sleep(self.retry_s)

    async def _attempt(self) -> bool:
        """One try; True when every request so far is served (or there is no file)."""
        served = self._requested  # whatever arrives during the call needs a later rewrite
        if await self._aof_enabled() and not await self._ask_once():
            return False
        self._covered = max(self._covered, served)
        return True

    async def _aof_enabled(self) -> bool:
        try:
            info = await self.redis.info("persistence")
        except NoPermissionError:
            return True
        return bool(int(info.get("aof_enabled", 1)))

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
