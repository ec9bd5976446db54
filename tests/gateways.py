"""Helpers for the gateway tests: a verifier on the test's key prefix, a freshly issued
secret, and a Redis client that reaches nobody."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from token_service.client import TokenClient
from token_service.gateway import Verifier
from token_service.redis.embedded import free_port
from token_service.settings import ServiceSettings


def unreachable_redis() -> Redis:
    """A client for a port nothing listens on, that gives up at once rather than retry."""
    return Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))


def verifier_for(redis: Redis, settings: ServiceSettings, **options: object) -> Verifier:
    """A ``Verifier`` on ``redis`` and the test's key prefix."""
    return Verifier(redis, key_prefix=settings.key_prefix, **options)  # type: ignore[arg-type]


async def issued_secret(client: TokenClient, name: str, scopes: list[str], **extra: object) -> str:
    """The secret of a token the service has just made."""
    reply = await client.generate(name, scopes, **extra)  # type: ignore[arg-type]
    assert reply.secret is not None
    return reply.secret
