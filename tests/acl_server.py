"""A real redis-server loading the ACL file we ship, and clients logged in as its users.

Each test starts its own server with the file rendered for the test's key prefix, and
logs in as one user at a time. Refusals must come from Redis itself (NOPERM).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from token_service.keys import Keys
from token_service.redis.acl import dev_password, password_hash, render, users
from token_service.redis.connection import RedisAccess, redis_client
from token_service.redis.embedded import EmbeddedRedis

USERS = [user.name for user in users()]
INSPECTOR = "acl-inspector"
"""A user for the tests' own eyes only: reads everything, reads the ACL log, changes nothing."""
_INSPECTOR_LINE = (
    f"user {INSPECTOR} on #{password_hash('inspect')} resetkeys resetchannels -@all"
    " +acl|log +info +hgetall +hget +lrange +xlen +xinfo|groups %R~*\n"
)

Connect = Callable[[str], Awaitable[Redis]]
"""``await connect(user)``: a decoding client logged in as that user."""


@dataclass
class AclServer:
    """A redis-server enforcing our ACL for one key prefix."""

    server: EmbeddedRedis
    keys: Keys

    def access(self, user: str, password: str | None = None) -> RedisAccess:
        """Connection settings for ``user`` (with its dev password unless told)."""
        return RedisAccess(
            redis_url=self.server.url,
            redis_username=user,
            redis_password=SecretStr(password or dev_password(user)),
        )

    def env(self, user: str) -> dict[str, str]:
        """What a process needs in its environment to log in as ``user``."""
        return {"REDIS_USERNAME": user, "REDIS_PASSWORD": dev_password(user)}


def acl_server_in(directory: Path) -> Iterator[AclServer]:
    """A fresh redis-server with the rendered ACL file, the default user off."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    acl_file = directory / "users.acl"
    acl_file.write_text(render(prefix) + _INSPECTOR_LINE)
    # DEBUG is enabled so that only the ACL stands between a user and it; the append-only
    # file is on, as in compose.yaml, so the service's scrub of pasted tokens runs.
    server = EmbeddedRedis.start(
        appendonly=True,
        appendfsync="everysec",
        extra_args=("--aclfile", str(acl_file), "--enable-debug-command", "local"),
    )
    assert server.kind == "redis-server"
    yield AclServer(server, Keys(prefix))
    server.stop()


@asynccontextmanager
async def logins(acl_server: AclServer) -> AsyncIterator[Connect]:
    """``connect(user)`` for the block; every client it opened is closed after it."""
    opened: list[Redis] = []

    async def open_as(user: str) -> Redis:
        password = "inspect" if user == INSPECTOR else None
        client = redis_client(acl_server.access(user, password), decode_responses=True)
        opened.append(client)
        return client

    try:
        yield open_as
    finally:
        for client in opened:
            await client.aclose()


async def refused(call: Any) -> None:
    """Redis refuses ``call`` for want of permission (NOPERM)."""
    with pytest.raises(NoPermissionError):
        await call


_HANDSHAKE = ("client|setinfo", "client|maint_notifications")
"""What FastStream's own connections send on connecting: no user of ours may run it (our
own clients do not send it), and the clients carry on without it."""


async def refusals(inspector: Redis) -> list[Any]:
    """Redis' ACL log, less the handshake commands FastStream's connections send."""
    entries = await inspector.acl_log()
    return [entry for entry in entries if entry.get("object") not in _HANDSHAKE]
