"""Helpers for the verdict cache tests: keys written as the service writes them, and
what Redis itself counts, so that a test sees whether a check reached it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from contracts.token_format import mint, secret_digest
from token_service.gateway import CacheOptions, Verifier
from token_service.keys import Keys

SCOPE = "entities:read"
FAST = CacheOptions(heartbeat_s=0.2)
"""Tracking that notices a silent Redis within 0.4 s."""


async def store_token(redis: Redis, keys: Keys, scopes: str = SCOPE, **fields: str) -> str:
    """A token whose secret hash is written the way the service writes it."""
    token = mint()
    mapping = {"token_id": f"01TOKEN{token[-6:]}", "scopes": scopes, **fields}
    await redis.hset(keys.secret(secret_digest(token)), mapping=mapping)  # type: ignore[arg-type]
    return token


def secret_key(keys: Keys, token: str) -> str:
    """The key a gateway reads for ``token``."""
    return keys.secret(secret_digest(token))


async def reads(redis: Redis) -> int:
    """HMGETs Redis has run so far, from any client (INFO commandstats)."""
    stats: dict[str, Any] = await redis.info("commandstats")
    return int(stats.get("cmdstat_hmget", {}).get("calls", 0))


async def cached_verifier(
    redis: Redis, keys: Keys, options: CacheOptions = FAST, **more: Any
) -> Verifier:
    """A verifier with a cache whose tracking is up."""
    verifier = Verifier(redis, key_prefix=keys.prefix, cache=options, **more)
    assert await verifier.start(), "tracking did not come up"
    return verifier


async def tracking_client_ids(redis: Redis) -> list[int]:
    """Connections that have CLIENT TRACKING on in broadcast mode (flags ``t`` and ``B``)."""
    clients = await redis.client_list()
    return [int(c["id"]) for c in clients if "t" in c["flags"] and "B" in c["flags"]]


async def eventually(predicate: Callable[[], bool | Awaitable[bool]], limit_s: float = 5) -> None:
    """Wait until ``predicate`` holds, failing the test after ``limit_s``."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        held = predicate()
        if held if isinstance(held, bool) else await held:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.01)
