"""Liveness, readiness and metrics over HTTP, served from the process's own event loop.

- ``GET /livez``: 200 while the event loop answers at all.
- ``GET /readyz``: 200 when Redis answers, every consumer group this process reads
  exists and, for a process that calls them, the Redis functions are loaded; 503 with
  the reason otherwise. A process that is waiting for Redis is alive
  but not ready.
- ``GET /metrics``: the process's Prometheus registry, with the consumer-group gauges
  read from Redis just before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from token_service.ops.metrics import GroupMetrics
from token_service.redis.library import loaded_version

__all__ = ["HealthServer", "Readiness", "until_redis_answers"]

_log = structlog.get_logger("token_service.ops.health")
_PROBE_TIMEOUT_S = 1.0
_RETRY_CAP_S = 5.0


async def until_redis_answers(step: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``step`` until Redis lets it finish, waiting longer after each refusal.

    A process started before its Redis stays alive (``/livez``) and unready (``/readyz``)
    instead of exiting, so an orchestrator need not start things in order.
    """
    delay = 0.1
    while True:
        try:
            await step()
            return
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            _log.warning("waiting_for_redis", step=what, error=type(exc).__name__, retry_s=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, _RETRY_CAP_S)


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the process can do its work, and if not, why."""

    ready: bool
    reason: str = "ok"


@dataclass(slots=True)
class _Watched:
    redis: Redis
    groups: list[tuple[str, str]] = field(default_factory=list)
    calls_functions: bool = False


class HealthServer:
    """The three endpoints of one process; components add the groups they read."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self._watched: list[_Watched] = []
        self._groups = GroupMetrics(registry)
        self._runner: web.AppRunner | None = None

    def watch(
        self, redis: Redis, groups: Sequence[tuple[str, str]], *, calls_functions: bool = False
    ) -> None:
        """Count ``redis`` and these ``(stream, group)`` pairs in readiness and metrics;
        with ``calls_functions``, the process is not ready until the library is loaded."""
        self._watched.append(_Watched(redis, list(groups), calls_functions))

    async def readiness(self) -> Readiness:
        """Ask Redis now: is it there, and are all the groups?"""
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT_S):
                for watched in self._watched:
                    await watched.redis.ping()
                    for stream, group in watched.groups:
                        if group not in await self._groups.groups(watched.redis, stream):
                            return Readiness(False, f"group {group} of {stream} does not exist")
                    if watched.calls_functions and await loaded_version(watched.redis) is None:
                        return Readiness(False, "the token service has not loaded its functions")
        except TimeoutError:
            return Readiness(False, "redis did not answer in time")
        except Exception as exc:
            return Readiness(False, f"redis unreachable: {type(exc).__name__}")
        return Readiness(True)

    async def _livez(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        readiness = await self.readiness()
        status = 200 if readiness.ready else 503
        return web.json_response(
            {"ready": readiness.ready, "reason": readiness.reason}, status=status
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        for watched in self._watched:
            try:
                await self._groups.refresh(watched.redis, watched.groups)
            except Exception as exc:  # counters are still worth serving without the gauges
                _log.warning("group_metrics_unavailable", error=type(exc).__name__)
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def start(self) -> None:
        """Listen; with port 0, ``port`` is the one the system chose."""
        app = web.Application()
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            # The commands still get handled; the operator hears why checks will fail.
            _log.error("health_not_served", host=self.host, port=self.port, error=str(exc))
            await self.stop()
            return
        address = self._runner.addresses[0]
        self.port = int(address[1])
        _log.info("health_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
