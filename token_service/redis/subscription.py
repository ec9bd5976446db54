"""Batch consumption of a Redis stream with FastStream: a reader and a claimer per group.

FastStream's batch parser decodes every body and fails on plain ``data`` entries, so it
is handed an empty batch and the raw entries ride along for our own code to read. Acks
are manual: each consumer acknowledges exactly the entries whose outcome is settled.
XAUTOCLAIM never reads new entries, so a second subscriber takes over entries that a
crashed or stalled consumer left pending for longer than the claim idle time.

Each subscriber's handler declares the type one entry carries, so that FastStream's
AsyncAPI generator documents the channel's payload from the ``contracts`` models; the
parameter itself always receives an empty list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faststream import AckPolicy, Context
from faststream.redis import RedisBroker, RedisSentinelBroker, StreamSub
from faststream.redis.message import RedisBatchStreamMessage

from token_service.redis.connection import RedisAccess
from token_service.redis.sentinel import failover_retry, primary_connection_class

__all__ = ["BatchHandler", "StreamEntry", "redis_broker", "subscribe_batches"]

StreamEntry = tuple[bytes, dict[bytes, bytes]]
BatchHandler = Callable[[list[StreamEntry], bool], Awaitable[None]]
"""Called with a batch of entries and whether they were claimed from another consumer."""

_MESSAGE = Context("message")


async def _keep_entries_raw(message: Mapping[str, Any], original: Any) -> Any:
    return await original({**message, "data": [], "entries": message["data"]})


def _entries(message: RedisBatchStreamMessage) -> list[StreamEntry]:
    raw: Any = message.raw_message
    return list(zip(raw["message_ids"], raw["entries"], strict=True))


def subscribe_batches(
    broker: RedisBroker,
    *,
    stream: str,
    group: str,
    consumer: str,
    batch_size: int,
    poll_ms: int,
    claim_idle_ms: int,
    handler: BatchHandler,
    payload: Any,
    description: str,
) -> None:
    """Register the reader and the claimer of ``group`` on ``stream``.

    ``payload`` is the type of one entry's ``data``, for the AsyncAPI document only.
    """

    def sub(**extra: Any) -> StreamSub:
        return StreamSub(
            stream,
            group=group,
            consumer=consumer,
            batch=True,
            max_records=batch_size,
            polling_interval=poll_ms,
            **extra,
        )

    options: dict[str, Any] = {
        "parser": _keep_entries_raw,
        "ack_policy": AckPolicy.MANUAL,
        "no_reply": True,
        "title": f"{stream}:{group}",
        "description": description,
    }

    async def read(entries: list[Any], message: RedisBatchStreamMessage = _MESSAGE) -> None:
        await handler(_entries(message), False)

    async def claim(entries: list[Any], message: RedisBatchStreamMessage = _MESSAGE) -> None:
        await handler(_entries(message), True)

    for documented in (read, claim):
        documented.__annotations__["entries"] = list[payload]

    broker.subscriber(stream=sub(), **options)(read)
    # The claimer reads the same channel for the same group: one entry in the document.
    broker.subscriber(
        stream=sub(min_idle_time=claim_idle_ms),
        **{**options, "title": f"{stream}:{group}:claim", "include_in_schema": False},
    )(claim)


def redis_broker(access: RedisAccess, **options: Any) -> RedisBroker:
    """A FastStream broker; ``options`` are RedisBroker's own (logger, middlewares...).

    Through Sentinel it is FastStream's own ``RedisSentinelBroker``, whose pool asks the
    sentinels for the primary on every new connection: a subscriber whose read failed
    in a failover reads again from the new primary, and the consumer group is there,
    replicated with the stream. FastStream pauses 5 s after a failed read, though, so
    the broker's reads are retried (:func:`~token_service.redis.sentinel.failover_retry`)
    until the new primary answers and do not fail in a failover at all.
    """
    if access.uses_sentinel:
        return RedisSentinelBroker(
            access.required_url(),
            sentinels=access.sentinel_addresses(),
            sentinel_master_name=access.redis_sentinel_master,
            sentinel_kwargs=access.sentinel_options(),
            retry=failover_retry(),
            connection_class=primary_connection_class(access.uses_tls),
            **access.connection_options(),
            **options,
        )
    return RedisBroker(access.required_url(), **access.connection_options(), **options)
