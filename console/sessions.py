"""Server-side sessions in Redis: the signed-in identity, and never a secret.

The cookie holds a random session id; Redis holds, under the SHA-256 of that id, who
signed in, how and when. A session ends after ``idle`` without a request, and at the
latest ``max_age`` after sign-in. The CSRF token is derived from the id, so it is
stored nowhere, and someone who can read Redis can neither use a session nor forge
its CSRF token.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import cast

import orjson
from redis.asyncio import Redis

from token_service.keys import Keys

__all__ = ["Session", "SessionStore", "digest"]


def digest(text: str) -> str:
    """The lowercase hex SHA-256 of ``text``: what Redis keys are named by."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """One signed-in person."""

    id: str
    identity: str
    via: str
    """``link`` or ``oidc``."""
    created_ms: int
    group_admin: bool = False
    """Their sign-in carried the configured administrators' group."""

    @property
    def csrf(self) -> str:
        """The token every form of this session must send back."""
        return digest(f"csrf:{self.id}")


class SessionStore:
    """Sessions under ``<prefix>:console:session:*``."""

    def __init__(self, redis: Redis, keys: Keys, idle_s: int, max_age_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.idle_ms = idle_s * 1000
        self.max_age_ms = max_age_s * 1000

    async def create(self, identity: str, via: str, *, group_admin: bool = False) -> Session:
        """A new session (a new id at every sign-in: none is ever reused)."""
        session = Session(
            secrets.token_urlsafe(32), identity, via, int(time.time() * 1000), group_admin
        )
        body = {
            "identity": identity,
            "via": via,
            "created_ms": session.created_ms,
            "group_admin": group_admin,
        }
        key = self.keys.console_session(digest(session.id))
        await self.redis.set(key, orjson.dumps(body), px=self.idle_ms)
        return session

    async def load(self, session_id: str) -> Session | None:
        """The live session with this id, kept alive for another idle period; or None."""
        key = self.keys.console_session(digest(session_id))
        raw = cast(str | None, await self.redis.get(key))
        if raw is None:
            return None
        body = orjson.loads(raw)
        created_ms = int(body["created_ms"])
        if time.time() * 1000 - created_ms > self.max_age_ms:
            await self.redis.delete(key)
            return None
        await self.redis.pexpire(key, self.idle_ms)
        return Session(
            session_id, str(body["identity"]), str(body["via"]), created_ms, body["group_admin"]
        )

    async def end(self, session_id: str) -> None:
        """Sign out: the id no longer opens anything."""
        await self.redis.delete(self.keys.console_session(digest(session_id)))
