"""``python -m workers.notify``: the notifier's process, wired together.

It posts notices of ``tokens:events`` (``TokenRevoked`` and the types in
``NOTIFY_EVENT_TYPES``) to the webhooks in ``NOTIFY_WEBHOOKS``, signed, retried, each
delivered once (:mod:`workers.notices`). It logs in to Redis as the ``notifier`` user.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

import aiohttp
import structlog
from prometheus_client import CollectorRegistry

from token_service.ops.health import HealthServer, until_redis_answers
from token_service.ops.logs import configure_logging
from token_service.redis.connection import redis_client
from workers.notices import GROUP, Notifier
from workers.notify_metrics import NotifyMetrics
from workers.notify_settings import NotifySettings

__all__ = ["main", "run"]

_log = structlog.get_logger("workers.notify")
_PAUSE_AFTER_ERROR_S = 1.0


async def _loop(notifier: Notifier) -> None:
    while True:
        try:
            await notifier.step()
        except Exception:
            # redis-py can turn a cancellation into another error: never swallow a stop.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            _log.exception("notify_step_failed")
            await asyncio.sleep(_PAUSE_AFTER_ERROR_S)


async def run(settings: NotifySettings, stop: asyncio.Event) -> None:
    """Deliver notices until ``stop`` is set."""
    if settings.redis_url is None:
        raise ValueError("REDIS_URL is required for the notifier")
    redis = redis_client(settings)
    registry = CollectorRegistry()
    health = None
    if settings.http_port is not None:
        health = HealthServer(registry, settings.http_host, settings.http_port)
        health.watch(redis, [(f"{settings.key_prefix}:events", GROUP)])
        await health.start()
    async with aiohttp.ClientSession() as session:
        notifier = Notifier(redis, settings, NotifyMetrics(registry), session)
        await until_redis_answers(notifier.prepare, "prepare")
        _log.info("notifier_started", webhooks=[hook.name for hook in settings.webhooks])
        task = asyncio.create_task(_loop(notifier))
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if health is not None:
        await health.stop()
    await redis.aclose()


def main() -> int:
    """Run the notifier until SIGTERM or SIGINT."""
    settings = NotifySettings()
    configure_logging(settings.log_level)

    async def until_signalled() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run(settings, stop)

    asyncio.run(until_signalled())
    return 0


if __name__ == "__main__":
    sys.exit(main())
