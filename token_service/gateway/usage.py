"""``UsageReporter``: counts a gateway's accepted checks and reports them as ``TokenUsed``.

``record`` only touches a dict, so a slow or absent Redis never slows a check. Every
``interval`` the counts are swapped out and appended to ``tokens:usage``, one entry per
token with the exact count since the last report. A report Redis did not confirm is kept,
with its event ids, and sent again: the audit worker counts each ``event_id`` once, so a
report that did land the first time is not counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError
from ulid import ULID

from contracts import TokenUsed, from_millis
from token_service.keys import Keys

__all__ = ["UsageReporter"]

_log = logging.getLogger("token_service.gateway.usage")


@dataclass(slots=True)
class _Tally:
    count: int
    last_ms: int


class UsageReporter:
    """Aggregates uses per token and appends them to the usage stream in the background."""

    def __init__(
        self,
        redis: Redis,
        *,
        gateway: str,
        key_prefix: str = "tokens",
        interval_s: float = 1.0,
        max_tokens: int = 100_000,
        timeout_s: float = 2.0,
    ) -> None:
        if not 1 <= len(gateway) <= 256:
            raise ValueError("gateway must be 1 to 256 characters")
        self.redis = redis
        self.gateway = gateway
        self.stream = Keys(key_prefix).usage
        self.interval_s = interval_s
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.dropped_uses = 0  # uses of tokens beyond max_tokens in one interval
        self.dropped_reports = 0  # unsent reports beyond max_tokens while Redis was away
        self._tallies: dict[str, _Tally] = {}
        self._unsent: list[bytes] = []
        self.reporter = str(ULID())
        """This reporter, from its start; with a sequence per report, the audit worker
        recognizes a re-sent report by a window per reporter rather than by event id."""
        self._sequence = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def record(self, token_id: str, used_ms: int) -> None:
        """Count one accepted use; O(1), never waits."""
        tally = self._tallies.get(token_id)
        if tally is not None:
            tally.count += 1
            if used_ms > tally.last_ms:
                tally.last_ms = used_ms
        elif len(self._tallies) < self.max_tokens:
            self._tallies[token_id] = _Tally(1, used_ms)
        else:  # memory stays bounded however many tokens are seen
            self.dropped_uses += 1

    async def start(self) -> None:
        """Report every ``interval_s`` until :meth:`close`."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="usage-reporter")

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
            try:
                await self.flush()
            except Exception:  # a bug must not end reporting for good
                _log.exception("usage report crashed; reporting goes on")
        await self.flush()  # what was counted while the last report was on its way

    async def flush(self) -> None:
        """Send what has been counted, and anything a failed report left over."""
        tallies, self._tallies = self._tallies, {}
        batch = self._unsent + [
            TokenUsed(
                token_id=token_id,
                actor=self.gateway,
                used_at=from_millis(tally.last_ms),
                count=tally.count,
                gateway=self.gateway,
                reporter=self.reporter,
                sequence=next(self._sequence),
            ).to_json()
            for token_id, tally in tallies.items()
        ]
        self._unsent = []
        if not batch:
            return
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self.redis.pipeline(transaction=True) as pipe,
            ):
                for event in batch:
                    pipe.xadd(self.stream, {"data": event})
                await pipe.execute()
        except BaseException as exc:
            # Not confirmed: keep the reports, event ids and all, for the next try.
            self._unsent = batch[-self.max_tokens :]
            self.dropped_reports += max(0, len(batch) - self.max_tokens)
            if not isinstance(exc, RedisError | OSError | TimeoutError):
                raise
            _log.warning(
                "usage report of %d entries failed, kept for the next: %s", len(batch), exc
            )

    async def close(self) -> None:
        """Stop reporting, after one last report of what was counted."""
        self._stopping.set()
        if self._task is not None:
            await self._task  # it reports once more on its way out
            self._task = None
        else:
            await self.flush()
