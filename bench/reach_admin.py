"""The administrator's side of :mod:`bench.reach`: issue the tokens, then revoke them.

The revocations come from a process of its own, so that the moment a reply reaches the
administrator is not held up by the gateway's busy event loop. It reads one token id per
line on stdin, revokes it through the service, and writes ``<sent_ns> <reply_ns> ok`` (or
the error code instead of ``ok``), both times on the machine's monotonic clock.
"""

from __future__ import annotations

import asyncio
import sys
import time

from redis.asyncio import Redis

from bench.commands import ACTOR
from token_service.client import TokenClient

__all__ = ["issue", "serve_admin"]

_AT_ONCE = 50
_REPLY_TIMEOUT_S = 30.0


async def issue(redis: Redis, prefix: str, count: int) -> list[tuple[str, str]]:
    """``count`` tokens generated through the service: (token id, secret) each."""
    limit = asyncio.Semaphore(_AT_ONCE)
    async with TokenClient(
        redis, actor=ACTOR, key_prefix=prefix, timeout=_REPLY_TIMEOUT_S
    ) as client:

        async def one(index: int) -> tuple[str, str]:
            async with limit:
                reply = await client.generate(f"reach-{index}", ["entities:read"])
            if reply.token is None or reply.secret is None:
                raise RuntimeError(f"GenerateToken failed: {reply.error}")
            return reply.token.id, reply.secret

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def serve_admin(url: str, prefix: str, *, actor: str) -> None:
    """Revoke each token id read from stdin, until stdin closes."""
    redis = Redis.from_url(url)
    try:
        async with TokenClient(
            redis, actor=actor, key_prefix=prefix, timeout=_REPLY_TIMEOUT_S
        ) as client:
            while line := await asyncio.to_thread(sys.stdin.readline):
                sent_ns = time.monotonic_ns()
                reply = await client.revoke(line.strip(), reason="reach benchmark")
                reply_ns = time.monotonic_ns()
                outcome = "ok" if reply.ok else (reply.error.code if reply.error else "failed")
                sys.stdout.write(f"{sent_ns} {reply_ns} {outcome}\n")
                sys.stdout.flush()
    finally:
        await redis.aclose()
