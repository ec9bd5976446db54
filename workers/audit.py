"""The audit worker: folds ``TokenUsed`` into last-used times and keeps each token's trail.

``python -m workers.audit`` reads ``tokens:usage`` (group ``audit-usage``) and
``tokens:events`` (group ``audit``) in batches. Each batch is folded by one call of a
Redis function (``token_service/redis/lua/fold_*.lua``), which skips event ids it has seen, so
a redelivered entry, a retried report or a second worker never counts an event twice.
Entries that cannot be read are dead-lettered with the reason, and the stream goes on.

The worker may call the functions but not load them: the token service loads the library
(see ``token_service.redis.library``). Started first, the worker waits for it, unready; should
Redis lose the library later, a fold waits for it to come back, and entries not folded
stay pending, to be delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from faststream import FastStream
from faststream.redis import RedisBroker
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from contracts import LifecycleEvent, TokenUsed, event_adapter, to_millis
from token_service.keys import Keys
from token_service.ops.health import HealthServer, until_redis_answers
from token_service.ops.logs import configure_logging
from token_service.redis.connection import redis_broker, redis_client
from token_service.redis.deadletters import dead_letter
from token_service.redis.library import call, is_missing, wait_for_library
from token_service.redis.subscription import StreamEntry, delivery_count, subscribe_batches
from workers.metrics import AuditMetrics
from workers.settings import AuditSettings
from workers.usage_events import HOUR_MS, Fold, read_usage

__all__ = ["EVENTS_GROUP", "USAGE_GROUP", "AuditWorker", "Worker", "build_worker", "main"]

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
        self._folding: set[asyncio.Task[None]] = set()
        self._ttl_ms = str(settings.dedupe_hours * HOUR_MS + HOUR_MS)

    async def prepare(self) -> None:
        """Create both groups at id 0 (so nothing written earlier is skipped); wait until
        the token service has loaded the functions library."""
        for stream, group in ((self.keys.usage, USAGE_GROUP), (self.keys.events, EVENTS_GROUP)):
            try:
                await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
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

    async def fold_usage(self, entries: list[StreamEntry], claimed: bool = False) -> None:
        """Fold a batch from ``tokens:usage``; the function acknowledges what it folds."""
        folds: list[Fold] = []
        done: list[str] = []
        dead: list[tuple[str, dict[bytes, bytes], str]] = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            reason = await self._give_up(self.keys.usage, USAGE_GROUP, entry_id, claimed)
            read = read_usage(fields.get(b"data", b"")) if reason is None else reason
            if isinstance(read, str):
                dead.append((entry_id, fields, read))
            else:
                folds.append(read)
                done.append(entry_id)
        if done:
            await self._fold_behind(
                [
                    self.keys.prefix,
                    self._ttl_ms,
                    self.keys.usage,
                    USAGE_GROUP,
                    orjson.dumps(folds).decode(),
                    orjson.dumps(done).decode(),
                ],
                len(folds),
                max(int(fold[3]) for fold in folds),
            )
        await self._settle(self.keys.usage, USAGE_GROUP, [], dead)

    async def fold_events(self, entries: list[StreamEntry], claimed: bool = False) -> None:
        """Fold a batch from ``tokens:events`` into each token's audit trail."""
        args: list[str | int] = [self.keys.prefix, self._ttl_ms]
        done: list[str] = []
        dead: list[tuple[str, dict[bytes, bytes], str]] = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            reason = await self._give_up(self.keys.events, EVENTS_GROUP, entry_id, claimed)
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
                dead.append((entry_id, fields, reason))
        added = await self._fold("audit_fold_events", args)
        await self._settle(self.keys.events, EVENTS_GROUP, done, dead)
        self.metrics.audit_folded.inc(int(added or 0))

    async def _give_up(self, stream: str, group: str, entry_id: str, claimed: bool) -> str | None:
        if not claimed:
            return None
        deliveries = await delivery_count(self.redis, stream, group, entry_id)
        if deliveries > self.settings.max_deliveries:
            return f"not folded after {deliveries - 1} deliveries"
        return None

    async def _settle(
        self,
        stream: str,
        group: str,
        done: list[str],
        dead: list[tuple[str, dict[bytes, bytes], str]],
    ) -> None:
        if not done and not dead:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for entry_id, fields, reason in dead:
                letter = dead_letter(
                    stream=stream,
                    entry_id=entry_id,
                    fields=fields,
                    reason=reason,
                    consumer=self.settings.consumer_name,
                )
                pipe.xadd(self.keys.dead_letter, {"data": letter})
                _log.warning("entry_dead_lettered", stream=stream, entry_id=entry_id, reason=reason)
            ids = done + [entry_id for entry_id, _, _ in dead]
            if ids:
                pipe.xack(stream, group, *ids)
            await pipe.execute()
        if dead:
            self.metrics.dead_letters.labels(stream).inc(len(dead))


def _describe(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "data"
    return f"not a valid event: {where}: {first['msg']}"[:300]


@dataclass(frozen=True, slots=True)
class Worker:
    """The audit worker's process, wired together."""

    app: FastStream
    broker: RedisBroker
    worker: AuditWorker
    registry: CollectorRegistry
    health: HealthServer | None
    """The worker's own endpoints; None when it reports through its host's (or none)."""


def build_worker(
    settings: AuditSettings,
    *,
    registry: CollectorRegistry | None = None,
    host_health: HealthServer | None = None,
) -> Worker:
    """Build the FastStream app that folds usage and events; nothing connects yet.

    Run inside another process (``python -m token_service --with-audit-worker``), it
    takes that process's ``registry`` and ``host_health`` instead of serving its own.
    """
    if settings.redis_url is None:
        raise ValueError("REDIS_URL is required for the audit worker")
    broker = redis_broker(
        settings, logger=logging.getLogger("workers.broker"), log_level=logging.DEBUG
    )
    redis = redis_client(settings)
    registry = registry if registry is not None else CollectorRegistry()
    worker = AuditWorker(redis, settings, AuditMetrics(registry))
    groups = [(worker.keys.usage, USAGE_GROUP), (worker.keys.events, EVENTS_GROUP)]
    health = None
    if host_health is not None:
        host_health.watch(redis, groups, calls_functions=True)
    elif settings.http_port is not None:
        health = HealthServer(registry, settings.http_host, settings.http_port)
        health.watch(redis, groups, calls_functions=True)
    common: dict[str, Any] = {
        "consumer": settings.consumer_name,
        "batch_size": settings.batch_size,
        "poll_ms": settings.poll_ms,
        "claim_idle_ms": settings.claim_idle_ms,
    }
    subscribe_batches(
        broker,
        stream=worker.keys.usage,
        group=USAGE_GROUP,
        handler=worker.fold_usage,
        payload=TokenUsed,
        description=(
            "Gateways XADD one TokenUsed per token per reporting interval (field `data`);"
            " the audit worker folds them into last-used times and daily counts."
        ),
        **common,
    )
    subscribe_batches(
        broker,
        stream=worker.keys.events,
        group=EVENTS_GROUP,
        handler=worker.fold_events,
        payload=LifecycleEvent,
        description=(
            "Every lifecycle event, written by the token service in the same transaction as"
            " the change it reports; the audit worker keeps each token's audit trail."
        ),
        **common,
    )
    app = FastStream(broker, logger=logging.getLogger("workers.app"))

    @app.on_startup
    async def prepare() -> None:
        if health is not None:
            await health.start()
        await until_redis_answers(worker.prepare, "prepare")

    @app.after_shutdown
    async def close() -> None:
        await worker.drain()
        if health is not None:
            await health.stop()
        await redis.aclose()

    return Worker(app=app, broker=broker, worker=worker, registry=registry, health=health)


def main() -> int:
    """Run the audit worker until interrupted."""
    settings = AuditSettings()
    configure_logging(settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(build_worker(settings).app.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
