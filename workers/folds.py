"""Folding the streams the audit worker reads into per-token state.

``tokens:usage`` (group ``audit-usage``) becomes last-used times and daily counts;
``tokens:events`` (group ``audit``) becomes each token's audit trail. Each batch is
folded by one call of a Redis function (``token_service/redis/lua/fold_*.lua``), which
skips event ids it has seen, so a redelivered entry, a retried report or a second worker
never counts an event twice. Entries that cannot be read are dead-lettered with the
reason, and the stream goes on.

The worker may call the functions but not load them: the token service loads the library
(see ``token_service.redis.library``). Should Redis lose it, a fold waits for it to come
back, and entries not folded stay pending, to be delivered again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import structlog
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from contracts import event_adapter, to_millis
from token_service.keys import Keys
from token_service.redis.groups import ConsumerGroup, Parked
from token_service.redis.library import call, is_missing, wait_for_library
from token_service.redis.subscription import StreamEntry
from workers.metrics import AuditMetrics
from workers.settings import AuditSettings
from workers.usage_events import HOUR_MS, Fold, read_usage

__all__ = ["EVENTS_GROUP", "USAGE_GROUP", "AuditWorker"]

USAGE_GROUP = "audit-usage"
EVENTS_GROUP = "audit"
_log = structlog.get_logger("workers.audit")
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
        self._ttl_ms = str(settings.dedupe_hours * HOUR_MS + HOUR_MS)

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

    async def _fold_behind(self, args: list[str | int], count: int, newest_ms: int) -> None:
        """Fold while the next batch is read and parsed, with at most two folds in flight.

        Safe because the function acknowledges the entries it folds: a fold that never
        ran leaves its entries pending, to be claimed and folded later.
        """
        while len(self._folding) >= 2:
            await asyncio.wait(self._folding, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(self._fold_usage(args, count, newest_ms))
        self._folding.add(task)
        task.add_done_callback(self._fold_done)

    def _fold_done(self, task: asyncio.Task[None]) -> None:
        self._folding.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("fold_failed", error=str(task.exception()))

    async def drain(self) -> None:
        """Wait for the folds still in flight (at shutdown)."""
        if self._folding:
            await asyncio.wait(self._folding)

    async def _fold_usage(self, args: list[str | int], count: int, newest_ms: int) -> None:
        folded = int(await self._fold("audit_fold_usage", args))
        self.metrics.folded_usage(folded, count - folded, newest_ms)

    async def _settle(self, group: ConsumerGroup, done: list[str], dead: list[Parked]) -> None:
        for entry in dead:
            _log.warning(
                "entry_dead_lettered",
                stream=group.stream,
                entry_id=entry.entry_id,
                reason=entry.reason,
            )
        await group.settle(done, dead)
        if dead:
            self.metrics.dead_letters.labels(group.stream).inc(len(dead))

    async def fold_usage(self, entries: list[StreamEntry], claimed: bool = False) -> None:
        """Fold a batch from ``tokens:usage``; the function acknowledges what it folds."""
        folds: list[Fold] = []
        done: list[str] = []
        dead: list[Parked] = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            reason = await self.usage.given_up(entry_id) if claimed else None
            read = read_usage(fields.get(b"data", b"")) if reason is None else reason
            if isinstance(read, str):
                dead.append(Parked(entry_id, fields, read))
            else:
                folds.append(read)
                done.append(entry_id)
        if done:
            args: list[str | int] = [self.keys.prefix, self._ttl_ms, self.keys.usage, USAGE_GROUP]
            args += [orjson.dumps(folds).decode(), orjson.dumps(done).decode()]
            await self._fold_behind(args, len(folds), max(int(fold[3]) for fold in folds))
        await self._settle(self.usage, [], dead)

    async def fold_events(self, entries: list[StreamEntry], claimed: bool = False) -> None:
        """Fold a batch from ``tokens:events`` into each token's audit trail."""
        args: list[str | int] = [self.keys.prefix, self._ttl_ms]
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
                        bucket = to_millis(event.occurred_at) // HOUR_MS
                        args += [event.event_id, bucket, token_id, event.to_json().decode()]
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
