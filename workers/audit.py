"""``python -m workers.audit``: the audit worker's process, wired together.

It reads ``tokens:usage`` (group ``audit-usage``) and ``tokens:events`` (group
``audit``) in batches and folds them (:mod:`workers.folds`). Started before the token
service, it waits, unready, until the service has loaded the functions library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass

from faststream import FastStream
from faststream.redis import RedisBroker
from prometheus_client import CollectorRegistry

from contracts import LifecycleEvent, TokenUsed
from token_service.ops.health import HealthServer, until_redis_answers
from token_service.ops.logs import configure_logging
from token_service.redis.connection import redis_client
from token_service.redis.groups import ConsumerGroup
from token_service.redis.subscription import BatchHandler, redis_broker, subscribe_batches
from workers.folds import EVENTS_GROUP, USAGE_GROUP, AuditWorker
from workers.metrics import AuditMetrics
from workers.settings import AuditSettings

__all__ = ["EVENTS_GROUP", "USAGE_GROUP", "AuditWorker", "Worker", "build_worker", "main"]

_USAGE = (
    "Gateways XADD one TokenUsed per token per reporting interval (field `data`);"
    " the audit worker folds them into last-used times and daily counts."
)
_EVENTS = (
    "Every lifecycle event, written by the token service in the same transaction as"
    " the change it reports; the audit worker keeps each token's audit trail."
)


@dataclass(frozen=True, slots=True)
class Worker:
    """The audit worker's process, wired together."""

    app: FastStream
    broker: RedisBroker
    worker: AuditWorker
    registry: CollectorRegistry
    health: HealthServer | None
    """The worker's own endpoints; None when it serves none."""


def _subscribe(
    broker: RedisBroker,
    settings: AuditSettings,
    group: ConsumerGroup,
    handler: BatchHandler,
    payload: object,
    description: str,
) -> None:
    subscribe_batches(
        broker,
        stream=group.stream,
        group=group.group,
        consumer=settings.consumer_name,
        batch_size=settings.batch_size,
        poll_ms=settings.poll_ms,
        claim_idle_ms=settings.claim_idle_ms,
        handler=handler,
        payload=payload,
        description=description,
    )


def build_worker(settings: AuditSettings) -> Worker:
    """Build the FastStream app that folds usage and events; nothing connects yet."""
    if not settings.configured:
        raise ValueError("REDIS_URL (or REDIS_SENTINELS) is required for the audit worker")
    broker = redis_broker(
        settings, logger=logging.getLogger("workers.broker"), log_level=logging.DEBUG
    )
    redis = redis_client(settings)
    registry = CollectorRegistry()
    worker = AuditWorker(redis, settings, AuditMetrics(registry))
    health = None
    if settings.http_port is not None:
        health = HealthServer(registry, settings.http_host, settings.http_port)
        groups = [(group.stream, group.group) for group in (worker.usage, worker.events)]
        health.watch(redis, groups, calls_functions=True)
    _subscribe(broker, settings, worker.usage, worker.fold_usage, TokenUsed, _USAGE)
    _subscribe(broker, settings, worker.events, worker.fold_events, LifecycleEvent, _EVENTS)
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
