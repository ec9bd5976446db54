"""One ``TokenClient`` per signed-in administrator, kept open while the console runs.

Each client is the publisher ``console`` acting as one person (the service lets a
delegating publisher act for any administrator, and checks that the actor is one). A
client holds one reply subscription, so only the most recently active ``limit`` are kept.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from redis.asyncio import Redis

from token_service.client import TokenClient

__all__ = ["PUBLISHER", "CommandSenders"]

PUBLISHER = "console"
"""The console's name among the service's registered publishers (``console:delegating``)."""


class CommandSenders:
    """``TokenClient`` instances by actor."""

    def __init__(self, redis: Redis, key_prefix: str, timeout_s: float, limit: int = 64) -> None:
        self.redis = redis
        self.key_prefix = key_prefix
        self.timeout_s = timeout_s
        self.limit = limit
        self._clients: OrderedDict[str, TokenClient] = OrderedDict()
        self._lock = asyncio.Lock()

    async def client_for(self, actor: str) -> TokenClient:
        """The open client whose commands carry ``actor``."""
        async with self._lock:
            client = self._clients.get(actor)
            if client is not None:
                self._clients.move_to_end(actor)
                return client
            client = TokenClient(
                self.redis,
                actor=actor,
                key_prefix=self.key_prefix,
                timeout=self.timeout_s,
                publisher=PUBLISHER,
            )
            await client.__aenter__()
            self._clients[actor] = client
            while len(self._clients) > self.limit:
                _, oldest = self._clients.popitem(last=False)
                await oldest.__aexit__(None, None, None)
            return client

    async def close(self) -> None:
        """Close every client (at shutdown)."""
        async with self._lock:
            for client in self._clients.values():
                await client.__aexit__(None, None, None)
            self._clients.clear()
