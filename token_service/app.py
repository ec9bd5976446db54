"""The composition root of the command handler: builds the broker, the store and the app.

Nothing imports this module but entry points and tests; it wires the parts of
``token_service`` together and adds nothing of its own.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from faststream import FastStream
from faststream.redis import RedisBroker
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from contracts import Command
from token_service.commands.expiry import sweep_expired
from token_service.commands.pipeline import GROUP, CommandPipeline, Operations
from token_service.keys import Keys
from token_service.leaks import AofScrubber
from token_service.ops.health import HealthServer, until_redis_answers
from token_service.ops.metrics import CommandMetrics
from token_service.ops.retention import keep_streams_trimmed
from token_service.ops.tracing import Tracing, default_provider
from token_service.outputs import declare_outputs
from token_service.publishers import SHARED
from token_service.redis.connection import redis_client
from token_service.redis.groups import ConsumerGroup
from token_service.redis.migration import migrate_layout
from token_service.redis.store import TokenStore
from token_service.redis.subscription import redis_broker, subscribe_batches
from token_service.settings import ServiceSettings

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["Service", "build_service"]

_log = structlog.get_logger("token_service")
_OWN = (
    "Publisher `{name}` XADDs one command per entry (field `data`, a JSON object) to its"
    " own stream, which only its Redis user may write; the token service consumes it in"
    " group `token-service` and answers each on its `reply_to` channel, which must be"
    " under `<prefix>:replies:{name}:`."
)
_SHARED = (
    "Version 1's shared stream, read only where the deployment trusts every writer"
    " (TOKENS_TRUST_SHARED_STREAM): one command per entry (field `data`, a JSON object),"
    " answered on its `reply_to` channel under `<prefix>:replies:`."
)


@dataclass(frozen=True, slots=True)
class Service:
    """Everything one command-handler process runs, wired together."""

    app: FastStream
    broker: RedisBroker
    store: TokenStore
    group: ConsumerGroup
    """This process's consumer of the first stream read."""
    pipeline: CommandPipeline
    """The pipeline of the first stream read (version 1's shared one, when trusted)."""
    pipelines: list[CommandPipeline]
    """One per command stream read."""
    registry: CollectorRegistry
    """The process's Prometheus metrics."""
    health: HealthServer | None


def _broker(settings: ServiceSettings, tracing: Tracing) -> RedisBroker:
    return redis_broker(
        settings,
        logger=logging.getLogger("token_service.broker"),
        # FastStream's per-batch "Received"/"Processed" lines cannot name a command; our
        # own line per command does, so theirs go to DEBUG.
        log_level=logging.DEBUG,
        middlewares=tracing.middlewares(),
    )


def _pipelines(settings: ServiceSettings, redis: Redis, ops: Operations) -> list[CommandPipeline]:
    keys = Keys(settings.key_prefix)
    store = TokenStore(redis, keys, settings.command_ttl_seconds * 1000)
    pipelines = []
    for source in settings.sources():
        group = ConsumerGroup(
            redis=redis,
            stream=source.stream,
            group=GROUP,
            consumer=settings.consumer_name,
            dead_letters=keys.dead_letter,
            max_deliveries=settings.max_deliveries,
        )
        pipelines.append(CommandPipeline(source, store, group, settings, ops))
    return pipelines


def _subscribe(broker: RedisBroker, settings: ServiceSettings, pipeline: CommandPipeline) -> None:
    name = pipeline.source.publisher.name
    subscribe_batches(
        broker,
        stream=pipeline.group.stream,
        group=GROUP,
        consumer=settings.consumer_name,
        batch_size=settings.batch_size,
        poll_ms=settings.poll_ms,
        claim_idle_ms=settings.claim_idle_ms,
        handler=pipeline.process,
        payload=Command,
        description=_SHARED if name == SHARED else _OWN.format(name=name),
    )


def _lifecycle(
    app: FastStream,
    pipelines: list[CommandPipeline],
    settings: ServiceSettings,
    health: HealthServer | None,
) -> None:
    store, scrubber = pipelines[0].store, pipelines[0].scrubber
    sweeper: list[asyncio.Task[None]] = []

    @app.on_startup
    async def prepare() -> None:
        if health is not None:
            await health.start()

        async def create_groups_and_load_functions() -> None:
            for pipeline in pipelines:
                await pipeline.group.ensure()
            # The audit worker's folds are in the library too: it waits for this.
            await store.load_functions()
            # Before any command: a Redis of an older layout is moved to this one.
            migrated = await migrate_layout(store.redis, store.keys)
            if migrated.tokens or migrated.issued:
                _log.info("layout_migrated", tokens=migrated.tokens, issued=migrated.issued)

        await until_redis_answers(create_groups_and_load_functions, "prepare")
        _log.info(
            "service_starting",
            consumer=settings.consumer_name,
            streams=[pipeline.group.stream for pipeline in pipelines],
            group=GROUP,
            batch_size=settings.batch_size,
        )

    @app.after_startup
    async def start_sweeping() -> None:
        sweeper.append(asyncio.create_task(sweep_expired(store, settings.expiry_sweep_ms)))
        trimming = keep_streams_trimmed(
            store.redis, settings.retention(), settings.retention_every_s
        )
        sweeper.append(asyncio.create_task(trimming))

    @app.on_shutdown
    async def stop_sweeping() -> None:
        for task in sweeper:
            task.cancel()
        await asyncio.gather(*sweeper, return_exceptions=True)
        await scrubber.close()

    @app.after_shutdown
    async def close() -> None:
        if health is not None:
            await health.stop()
        await store.redis.aclose()


def build_service(
    settings: ServiceSettings, *, tracer_provider: TracerProvider | None = None
) -> Service:
    """Build the FastStream app that consumes ``tokens:commands``; nothing connects yet.

    Tracing is on with ``tracer_provider`` (tests pass one), or with ``TOKENS_OTEL_ENABLED``,
    which exports over OTLP as the standard ``OTEL_*`` variables say.
    """
    if not settings.configured:
        raise ValueError(
            "REDIS_URL or REDIS_SENTINELS is required here; `python -m token_service` embeds one"
        )
    if not settings.sources():
        raise ValueError("nothing to read: set TOKENS_PUBLISHERS or TOKENS_TRUST_SHARED_STREAM")
    if tracer_provider is None and settings.otel_enabled:
        tracer_provider = default_provider("token-service")
    tracing = Tracing(tracer_provider)
    redis = redis_client(settings, decode_responses=True)
    registry = CollectorRegistry()
    ops = Operations(CommandMetrics(registry), tracing, AofScrubber(redis))
    pipelines = _pipelines(settings, redis, ops)
    health = None
    if settings.http_port is not None:
        health = HealthServer(registry, settings.http_host, settings.http_port)
        health.watch(redis, [(pipeline.group.stream, GROUP) for pipeline in pipelines])
    broker = _broker(settings, tracing)
    for pipeline in pipelines:
        _subscribe(broker, settings, pipeline)
    declare_outputs(broker, pipelines[0].keys)
    app = FastStream(broker, logger=logging.getLogger("token_service.app"))
    _lifecycle(app, pipelines, settings, health)
    first = pipelines[0]
    return Service(
        app=app,
        broker=broker,
        store=first.store,
        group=first.group,
        pipeline=first,
        pipelines=pipelines,
        registry=registry,
        health=health,
    )
