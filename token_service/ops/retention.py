"""Keeping the streams' memory bounded: each stream trimmed to its retention, in the background.

Every service process trims; trimming is idempotent, so several at once do no harm. What
may go, and what never does, is :mod:`token_service.redis.retention`'s rule.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog
from redis.asyncio import Redis

from token_service.redis.retention import Retention, trim

__all__ = ["keep_streams_trimmed"]

_log = structlog.get_logger("token_service.retention")


async def keep_streams_trimmed(redis: Redis, rules: Sequence[Retention], every_s: float) -> None:
    """Trim every ``every_s`` until cancelled; a failed pass is logged and tried again."""
    while True:
        for rule in rules:
            try:
                removed = await trim(redis, rule, time.time_ns() // 1_000_000)
            except Exception as exc:
                _log.warning("retention_trim_failed", stream=rule.stream, error=str(exc))
            else:
                if removed:
                    _log.info("stream_trimmed", stream=rule.stream, removed=removed)
        await asyncio.sleep(every_s)
