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

from contracts import Command
from token_service.commands.expiry import sweep_expired
from token_service.commands.pipeline import GROUP, CommandPipeline
from token_service.keys import Keys
from token_service.ops.health import HealthServer, until_redis_answers
from token_service.ops.metrics import CommandMetrics
from token_service.ops.tracing import Tracing, default_provider
from token_service.outputs import declare_outputs
from token_service.redis.connection import redis_client
from token_service.redis.groups import ConsumerGroup
from token_service.redis.store import TokenStore
from token_service.redis.subscription import redis_broker, subscribe_batches
from token_service.settings import ServiceSettings

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["Service", "build_service"]

_log = structlog.get_logger("token_service")
_COMMANDS = (
    "Admin-side publishers XADD one command per entry (field `data`, a JSON object);"
    " the token service consumes them in group `token-service` and answers each on"
    " its `reply_to` channel."
)


@dataclass(frozen=True, slots=True)
class Service:
    """Everything one command-handler process runs, wired together."""

    app: FastStream
    broker: RedisBroker
    store: TokenStore
    group: ConsumerGroup
    """This process's consumer of ``tokens:commands``."""
    pipeline: CommandPipeline
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


def _parts(
    settings: ServiceSettings, tracer_provider: TracerProvider | None
) -> tuple[RedisBroker, CommandPipeline, CollectorRegistry, HealthServer | None]:
    keys = Keys(settings.key_prefix)
    if tracer_provider is None and settings.otel_enabled:
        tracer_provider = default_provider("token-service")
    tracing = Tracing(tracer_provider)
    redis = redis_client(settings, decode_responses=True)
    store = TokenStore(redis, keys, settings.command_ttl_seconds * 1000)
    group = ConsumerGroup(
        redis=redis,
        stream=keys.commands,
        group=GROUP,
        consumer=settings.consumer_name,
        dead_letters=keys.dead_letter,
        max_deliveries=settings.max_deliveries,
    )
    registry = CollectorRegistry()
    pipeline = CommandPipeline(store, group, settings, CommandMetrics(registry), tracing)
    health = None
    if settings.http_port is not None:
        health = HealthServer(registry, settings.http_host, settings.http_port)
        health.watch(redis, [(keys.commands, GROUP)])
    return _broker(settings, tracing), pipeline, registry, health


def _lifecycle(
    app: FastStream,
    pipeline: CommandPipeline,
    settings: ServiceSettings,
    health: HealthServer | None,
) -> None:
    store, group = pipeline.store, pipeline.group
    sweeper: list[asyncio.Task[None]] = []

    @app.on_startup
    async def prepare() -> None:
        if health is not None:
            await health.start()

        async def create_group_and_load_functions() -> None:
            await group.ensure()
            # The audit worker's folds are in the library too: it waits for this.
            await store.load_functions()

        await until_redis_answers(create_group_and_load_functions, "prepare")
        _log.info(
            "service_starting",
            consumer=settings.consumer_name,
            stream=group.stream,
            group=group.group,
            batch_size=settings.batch_size,
        )

    @app.after_startup
    async def start_sweeping() -> None:
        sweeper.append(asyncio.create_task(sweep_expired(store, settings.expiry_sweep_ms)))

    @app.on_shutdown
    async def stop_sweeping() -> None:
        for task in sweeper:
            task.cancel()
        await asyncio.gather(*sweeper, return_exceptions=True)
        await pipeline.scrubber.close()

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
    if settings.redis_url is None:
        raise ValueError("REDIS_URL is required here; `python -m token_service` embeds one")
    broker, pipeline, registry, health = _parts(settings, tracer_provider)
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
        description=_COMMANDS,
    )
    declare_outputs(broker, pipeline.keys)
    app = FastStream(broker, logger=logging.getLogger("token_service.app"))
    _lifecycle(app, pipeline, settings, health)
    return Service(
        app=app,
        broker=broker,
        store=pipeline.store,
        group=pipeline.group,
        pipeline=pipeline,
        registry=registry,
        health=health,
    )
