"""The composition root of the command handler: builds the broker, the store and the app."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from faststream import AckPolicy, Context, FastStream
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import RedisBatchStreamMessage
from redis.asyncio import Redis

from token_service.keys import Keys
from token_service.processor import GROUP, CommandProcessor, StreamEntry
from token_service.settings import ServiceSettings
from token_service.store import TokenStore

__all__ = ["Service", "build_service"]

_log = structlog.get_logger("token_service")
_MESSAGE = Context("message")


@dataclass(frozen=True, slots=True)
class Service:
    """Everything one command-handler process runs, wired together."""

    app: FastStream
    broker: RedisBroker
    store: TokenStore
    processor: CommandProcessor


async def _keep_entries_raw(message: Mapping[str, Any], original: Any) -> Any:
    # FastStream's batch parser decodes every body and fails on plain `data` entries;
    # we hand it an empty batch and keep the entries, which the processor reads itself.
    return await original({**message, "data": [], "entries": message["data"]})


def _entries(message: RedisBatchStreamMessage) -> list[StreamEntry]:
    raw: Any = message.raw_message
    return list(zip(raw["message_ids"], raw["entries"], strict=True))


def build_service(settings: ServiceSettings) -> Service:
    """Build the FastStream app that consumes ``tokens:commands``; nothing connects yet."""
    if settings.redis_url is None:
        raise ValueError("REDIS_URL is required here; `python -m token_service` embeds one")
    keys = Keys(settings.key_prefix)
    broker = RedisBroker(settings.redis_url, logger=logging.getLogger("token_service.broker"))
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    store = TokenStore(redis, keys, settings.command_ttl_seconds * 1000)
    processor = CommandProcessor(store, settings)

    def stream(**extra: Any) -> StreamSub:
        return StreamSub(
            keys.commands,
            group=GROUP,
            consumer=settings.consumer_name,
            batch=True,
            max_records=settings.batch_size,
            polling_interval=settings.poll_ms,
            **extra,
        )

    common: dict[str, Any] = {
        "parser": _keep_entries_raw,
        "ack_policy": AckPolicy.MANUAL,
        "no_reply": True,
    }

    @broker.subscriber(stream=stream(), **common)  # type: ignore[untyped-decorator]
    async def read_commands(message: RedisBatchStreamMessage = _MESSAGE) -> None:
        await processor.process(_entries(message))

    # XAUTOCLAIM never reads new entries, so a second subscriber takes over entries that
    # a crashed or stalled consumer left pending for longer than the claim idle time.
    @broker.subscriber(  # type: ignore[untyped-decorator]
        stream=stream(min_idle_time=settings.claim_idle_ms), **common
    )
    async def claim_stalled(message: RedisBatchStreamMessage = _MESSAGE) -> None:
        await processor.process(_entries(message), claimed=True)

    app = FastStream(broker, logger=logging.getLogger("token_service.app"))

    @app.on_startup
    async def prepare() -> None:
        # A group FastStream creates starts at `$` and would skip commands sent before the
        # first start; creating it at 0 first makes FastStream find it and keep it.
        await store.ensure_group(keys.commands, GROUP)
        await store.load_scripts()
        _log.info(
            "service_starting",
            consumer=settings.consumer_name,
            stream=keys.commands,
            group=GROUP,
            batch_size=settings.batch_size,
        )

    @app.after_shutdown
    async def close() -> None:
        await redis.aclose()

    return Service(app=app, broker=broker, store=store, processor=processor)
