"""Expiry sweeping: tokens past their expiry become ``expired``, with ``TokenExpired``.

Every service process sweeps; the store's function expires each token exactly once
however many sweep at the same moment.
"""

from __future__ import annotations

import asyncio

import structlog

from contracts import utc_now
from token_service.redis.store import TokenStore

__all__ = ["sweep_expired"]

_log = structlog.get_logger("token_service")


async def sweep_expired(store: TokenStore, every_ms: int) -> None:
    """Sweep every ``every_ms`` until cancelled; a failed sweep is logged and retried."""
    while True:
        try:
            while await store.expire_due(utc_now()) > 0:
                pass
        except Exception:
            _log.exception("expiry_sweep_failed")
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # a swallowed cancellation still ends it
            raise asyncio.CancelledError
        await asyncio.sleep(every_ms / 1000)
