"""The composition root of the auth endpoint: Redis, verifier, usage reporter, servers.

Nothing imports this module but the entry point and tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from authz.check import Check
from authz.clients import ClientAddress
from authz.http import HttpServer
from authz.metrics import AuthzMetrics
from authz.replies import Replies
from authz.routes import RouteTable, load_routes
from authz.settings import AuthzSettings
from token_service.gateway import CacheOptions, UsageReporter, Verifier
from token_service.ops.health import HealthServer
from token_service.redis.connection import redis_client, replica_redis_client

__all__ = ["Endpoint", "build_endpoint"]

_log = structlog.get_logger("authz")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One auth endpoint process, wired together; nothing listens before :meth:`start`."""

    settings: AuthzSettings
    redis: Redis
    reads: Redis
    """Where checks read: ``redis`` itself, or a replica's client."""
    reporter: UsageReporter
    verifier: Verifier
    check: Check
    server: HttpServer
    registry: CollectorRegistry
    health: HealthServer | None

    async def start(self) -> None:
        """Report use, serve health and metrics, then answer checks."""
        await self.reporter.start()
        # Until tracking is up every check goes to Redis: starting never waits on it long.
        await self.verifier.start(timeout_s=1.0)
        if self.health is not None:
            await self.health.start()
        await self.server.start()
        _log.info(
            "authz_listening",
            host=self.server.host,
            port=self.server.port,
            path_prefix=self.check.path_prefix,
            routes=len(self.check.routes),
        )

    async def stop(self) -> None:
        """Stop answering, report the last uses, close Redis."""
        await self.server.stop()
        await self.verifier.close()
        await self.reporter.close()
        if self.health is not None:
            await self.health.stop()
        await self.redis.aclose()
        if self.reads is not self.redis:
            await self.reads.aclose()


def _cache_options(settings: AuthzSettings) -> CacheOptions | None:
    if not settings.cache:
        return None
    return CacheOptions(max_entries=settings.cache_max_entries, max_age_s=settings.cache_max_age_s)


def build_endpoint(settings: AuthzSettings, routes: RouteTable | None = None) -> Endpoint:
    """Wire the endpoint from ``settings`` (the routes from its file unless given)."""
    routes = routes if routes is not None else load_routes(settings.routes_file)
    timeout = settings.timeout_s
    redis = redis_client(settings, socket_timeout=timeout, socket_connect_timeout=timeout)
    reads = redis
    if settings.read_from_replicas:
        reads = replica_redis_client(
            settings, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    registry = CollectorRegistry()
    reporter = UsageReporter(redis, gateway=settings.gateway_name, key_prefix=settings.key_prefix)
    verifier = Verifier(
        reads,
        key_prefix=settings.key_prefix,
        token_prefix=settings.token_prefix,
        reporter=reporter,
        timeout_s=timeout,
        registry=registry,
        cache=_cache_options(settings),
    )
    check = Check(
        verifier,
        routes,
        Replies(settings.realm),
        AuthzMetrics(registry),
        path_prefix=settings.path_prefix,
        token_header=settings.token_header,
        scope_header=settings.scope_header,
        client_address=ClientAddress(settings.client_ip_header, settings.client_ip_hops),
    )
    server = HttpServer(
        check.answer_later,
        settings.host,
        settings.port,
        idle_timeout_s=settings.idle_timeout_s,
        headers=check.header_names,
        quick=check.answer_now,
    )
    health = None
    if settings.http_port is not None:
        health = HealthServer(registry, settings.http_host, settings.http_port)
        health.watch(reads, [])
    return Endpoint(settings, redis, reads, reporter, verifier, check, server, registry, health)
