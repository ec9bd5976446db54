"""Folding the streams the audit worker reads into per-token state.

``tokens:usage`` (group ``audit-usage``) becomes last-used times and daily counts;
``tokens:events`` (group ``audit``) becomes each token's audit trail. Each batch is
folded by one call of a Redis function (``token_service/redis/lua/fold_*.lua``), which
skips event ids it has seen arrive in this or the previous dedupe window (each
``AUDIT_DEDUPE_HOURS`` long, counted by the worker's clock, not by the times the event
states), so a redelivered entry, a re-sent report or a second worker never counts an
event twice. Entries that cannot be read are dead-lettered with the reason, and the
stream goes on. A usage entry holding anything token-shaped is dead-lettered (masked)
and deleted, and Redis asked to rewrite its append-only file when the token was real.

The worker may call the functions but not load them: the token service loads the library
(see ``token_service.redis.library``). Should Redis lose it, a fold waits for it to come
back, and entries not folded stay pending, to be delivered again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import structlog
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from contracts import CommandRejected, event_adapter, to_millis, utc_now
from token_service.keys import Keys
from token_service.leaks import AofScrubber, rewrite_wanted
from token_service.redis.groups import ConsumerGroup, Parked
from token_service.redis.library import call, is_missing, wait_for_library
from token_service.redis.subscription import StreamEntry
from workers.metrics import AuditMetrics
from workers.settings import AuditSettings
from workers.usage_batch import UsageBatch
from workers.usage_events import HOUR_MS

__all__ = ["EVENTS_GROUP", "USAGE_GROUP", "AuditWorker"]

USAGE_GROUP = "audit-usage"
EVENTS_GROUP = "audit"
_log = structlog.get_logger("workers.audit")
REPORTER_WINDOW = 65_536
"""Sequences remembered per reporter (8 KiB of bits): a report re-sent or redelivered
within this many newer reports of its reporter is recognized; an older one is taken for
a repeat."""
_MISSING_LIBRARY_WAIT_S = 30.0
"""How long a fold waits for a lost library before giving up; its entries stay pending."""


class AuditWorker:
    """Folds batches of usage and lifecycle events into per-token state."""

    def __init__(self, redis: Redis, settings: AuditSettings, metrics: AuditMetrics) -> None:
        self.redis = redis
        self.settings = settings
        self.metrics = metrics
        self.keys = Keys(settings.key_prefix)
        self.usage = self._group(self.keys.usage, USAGE_GROUP)
        self.events = self._group(self.keys.events, EVENTS_GROUP)
        self._folding: set[asyncio.Task[None]] = set()
        self._window_ms = settings.dedupe_hours * HOUR_MS
        self._skew_ms = settings.usage_skew_seconds * 1000
        self.scrubber = AofScrubber(redis)
        """Rewrites the append-only file after a usage entry holding a token was deleted."""

    def _group(self, stream: str, group: str) -> ConsumerGroup:
        return ConsumerGroup(
            redis=self.redis,
            stream=stream,
            group=group,
            consumer=self.settings.consumer_name,
            dead_letters=self.keys.dead_letter,
            max_deliveries=self.settings.max_deliveries,
        )

    async def prepare(self) -> None:
        """Create both groups at id 0 (so nothing written earlier is skipped); wait until
        the token service has loaded the functions library."""
        await self.usage.ensure()
        await self.events.ensure()
        if not await wait_for_library(self.redis, limit_s=0):
            _log.warning("waiting_for_functions", hint="start the token service")
            await wait_for_library(self.redis)
            _log.info("functions_loaded")

    async def _fold(self, function: str, args: list[str | int]) -> Any:
        """Call a fold; while the library is missing, wait for it rather than fail."""
        while True:
            try:
                return await call(self.redis, function, (), args)
            except ResponseError as exc:
                if not is_missing(exc):
                    raise
            _log.warning("waiting_for_functions", function=function)
            if not await wait_for_library(self.redis, _MISSING_LIBRARY_WAIT_S):
                raise RuntimeError(f"Redis has no function {function}: is the service running?")

    def _window(self, now_ms: int) -> list[str | int]:
        """This dedupe window's number, the previous one's, and how long to keep this one's
        seen set: until the end of the next window, which still checks it."""
        window = now_ms // self._window_ms
        return [window, window - 1, (window + 2) * self._window_ms - now_ms]

    async def _fold_behind(self, batch: UsageBatch) -> None:
        """Fold while the next batch is read and parsed, with at most two folds in flight.

        Safe because the function acknowledges the entries it folds: a fold that never
        ran leaves its entries pending, to be claimed and folded later.
        """
        while len(self._folding) >= 2:
            await asyncio.wait(self._folding, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(self._fold_usage(batch))
        self._folding.add(task)
        task.add_done_callback(self._fold_done)

    def _fold_done(self, task: asyncio.Task[None]) -> None:
        self._folding.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("fold_failed", error=str(task.exception()))

    async def drain(self) -> None:
        """Wait for the folds still in flight, then for a rewrite still wanted (at shutdown)."""
        if self._folding:
            await asyncio.wait(self._folding)
        await self.scrubber.close()

    async def _fold_usage(self, batch: UsageBatch) -> None:
        args: list[str | int] = [self.keys.prefix, batch.now_ms, *self._window(batch.now_ms)]
        args += [self.keys.usage, USAGE_GROUP]
        args += [orjson.dumps(batch.folds).decode(), orjson.dumps(batch.acks).decode()]
        args.append(REPORTER_WINDOW)
        folded, repeated, skipped = (int(n) for n in await self._fold("audit_fold_usage", args))
        self.metrics.folded_usage(folded, repeated, skipped + batch.skipped, batch.newest_ms)

    async def _settle(
        self,
        group: ConsumerGroup,
        done: Sequence[str],
        dead: Sequence[Parked],
        deleted: Sequence[str] = (),
    ) -> None:
        """Dead-letter ``dead``, acknowledge everything, and delete ``deleted`` entries."""
        for entry in dead:
            _log.warning(
                "entry_dead_lettered",
                stream=group.stream,
                entry_id=entry.entry_id,
                reason=entry.reason,
            )

        def delete(pipe: Pipeline) -> None:
            if deleted:
                pipe.xdel(group.stream, *deleted)

        await group.settle(done, dead, also=delete)
        if dead:
            self.metrics.dead_letters.labels(group.stream).inc(len(dead))

    async def fold_usage(self, entries: list[StreamEntry], claimed: bool = False) -> None:
        """Fold a batch from ``tokens:usage``; the function acknowledges what it folds."""
        batch = UsageBatch(now_ms=to_millis(utc_now()), skew_ms=self._skew_ms)
        for entry in entries:
            given_up = await self.usage.given_up(entry[0].decode()) if claimed else None
            batch.add(entry, given_up)
        if batch.acks:
            await self._fold_behind(batch)
        leaked = [entry.entry_id for entry in batch.leaked]
        await self._settle(self.usage, [], [*batch.leaked, *batch.dead], leaked)
        # XDEL cleared memory; the XADD that brought the token is still in the append-only
        # file until Redis rewrites it: worth it only for a token the service issued.
        if leaked and await rewrite_wanted(
            self.redis, self.keys, self.settings.token_prefix, batch.secrets
        ):
            self.scrubber.request()

    async def fold_events(self, entries: list[StreamEntry], claimed: bool = False) -> None:
        """Fold a batch from ``tokens:events`` into each token's audit trail."""
        args: list[str | int] = [self.keys.prefix, *self._window(to_millis(utc_now()))]
        args.append(self.settings.refusals_kept)
        done: list[str] = []
        dead: list[Parked] = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            reason = await self.events.given_up(entry_id) if claimed else None
            if reason is None:
                try:
                    event = event_adapter.validate_json(fields.get(b"data", b""))
                except ValidationError as exc:
                    reason = _describe(exc)
                else:
                    token_id = getattr(event, "token_id", None)
                    if token_id is not None:
                        kind = "refusal" if isinstance(event, CommandRejected) else "change"
                        args += [event.event_id, token_id, kind, event.to_json().decode()]
            if reason is None:
                done.append(entry_id)
            else:
                dead.append(Parked(entry_id, fields, reason))
        added = await self._fold("audit_fold_events", args)
        await self._settle(self.events, done, dead)
        self.metrics.audit_folded.inc(int(added or 0))


def _describe(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "data"
    return f"not a valid event: {where}: {first['msg']}"[:300]
