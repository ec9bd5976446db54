"""One-time sign-in links, as Jupyter prints one: good once, for a few minutes.

The link carries a random code; Redis holds only the code's SHA-256 and whom it signs in,
with an expiry. Redeeming it is one GETDEL, so no code opens two sessions.
"""

from __future__ import annotations

import secrets
from typing import cast

from redis.asyncio import Redis

from console.sessions import digest
from token_service.keys import Keys

__all__ = ["SignInLinks"]


class SignInLinks:
    """Links under ``<prefix>:console:link:*``."""

    def __init__(self, redis: Redis, keys: Keys, lifetime_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.lifetime_s = lifetime_s

    async def create(self, identity: str) -> str:
        """A new code that signs ``identity`` in once, within the lifetime."""
        code = secrets.token_urlsafe(32)
        key = self.keys.console_link(digest(code))
        await self.redis.set(key, identity, ex=self.lifetime_s)
        return code

    async def redeem(self, code: str) -> str | None:
        """Whom the code signs in, using it up; None when unknown, used or expired."""
        if not code or len(code) > 128:
            return None
        key = self.keys.console_link(digest(code))
        return cast(str | None, await self.redis.getdel(key))
