"""The verdict cache as the ``gateway`` Redis user, under the ACL file we ship.

A redis-server of its own loads the rendered file; Redis' ACL log must stay empty while
the cache does its work. With the file of before (no CLIENT TRACKING, no PTTL) the
checks stay right, and nothing is cached.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from tests.caching import FAST, SCOPE, eventually, secret_key, store_token
from token_service.gateway import Accepted, Rejected, RejectReason, Verifier
from token_service.keys import Keys
from token_service.redis.acl import dev_password, password_hash, render
from token_service.redis.connection import RedisAccess, redis_client
from token_service.redis.embedded import EmbeddedRedis

INSPECTOR = "acl-inspector"
_INSPECTOR_LINE = (
    f"user {INSPECTOR} on #{password_hash('inspect')} resetkeys resetchannels -@all"
    " +acl|log +info +client|list\n"
)
_BEFORE_THE_CACHE = ("+pttl ", "+client|tracking ")
"""What the gateway user gained for the cache: taken out, the file as it was."""


def _start(tmp_path: Path, acl: str) -> EmbeddedRedis:
    acl_file = tmp_path / "users.acl"
    acl_file.write_text(acl + _INSPECTOR_LINE)
    server = EmbeddedRedis.start(extra_args=("--aclfile", str(acl_file)))
    assert server.kind == "redis-server"
    return server


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def acl_server(tmp_path: Path, prefix: str) -> Iterator[EmbeddedRedis]:
    """A redis-server enforcing the ACL file rendered for ``prefix``."""
    server = _start(tmp_path, render(prefix))
    yield server
    server.stop()


@pytest.fixture
async def login(acl_server: EmbeddedRedis) -> AsyncIterator[Any]:
    """``login(user)``: a decoding client logged in as that user, closed afterwards."""
    opened: list[Redis] = []

    def open_as(user: str, server: EmbeddedRedis = acl_server) -> Redis:
        password = "inspect" if user == INSPECTOR else dev_password(user)
        access = RedisAccess(
            redis_url=server.url, redis_username=user, redis_password=SecretStr(password)
        )
        client = redis_client(access, decode_responses=True)
        opened.append(client)
        return client

    yield open_as
    for client in opened:
        await client.aclose()


async def test_the_gateway_user_runs_the_verdict_cache(login: Any, prefix: str) -> None:
    keys = Keys(prefix)
    service, gateway, inspector = login("token-service"), login("gateway"), login(INSPECTOR)
    token = await store_token(service, keys)  # before tracking: its write is no invalidation
    verifier = Verifier(gateway, key_prefix=prefix, cache=FAST)
    assert await verifier.start()
    assert verifier.cache is not None
    assert isinstance(await verifier.verify(token, SCOPE), Accepted)
    assert isinstance(await verifier.verify(token, SCOPE), Accepted)
    assert verifier.cache.hits == 1
    seen = verifier.cache.invalidations
    await service.delete(secret_key(keys, token))
    await eventually(lambda: verifier.cache is not None and verifier.cache.invalidations > seen)
    assert await verifier.verify(token, SCOPE) == Rejected(RejectReason.UNKNOWN)
    await verifier.close()
    assert await inspector.acl_log() == []


async def test_with_the_acl_of_before_checks_stay_right_and_nothing_is_cached(
    tmp_path: Path, prefix: str, login: Any
) -> None:
    acl = render(prefix)
    for grant in _BEFORE_THE_CACHE:
        acl = acl.replace(grant, "")
    (tmp_path / "old").mkdir()
    old = _start(tmp_path / "old", acl)
    try:
        keys = Keys(prefix)
        service, gateway = login("token-service", old), login("gateway", old)
        verifier = Verifier(gateway, key_prefix=prefix, cache=FAST)
        assert not await verifier.start(0.5)  # CLIENT TRACKING is refused
        token = await store_token(service, keys)
        for _ in range(3):
            assert isinstance(await verifier.verify(token, SCOPE), Accepted)
        assert verifier.cache is not None
        assert verifier.cache.bypassed == 3
        assert verifier.cache.hits == 0
        await verifier.close()
    finally:
        old.stop()


async def test_residual_risk_a_gateway_may_hear_key_names_outside_its_keys(
    login: Any, prefix: str
) -> None:
    """Pinned (see ``token_service.redis.acl``): Redis 7.0 does not hold a broadcast
    prefix to the user's key patterns, so a gateway can learn the names, never the
    values, of other keys; later Redis versions filter them."""
    service, gateway = login("token-service"), login("gateway")
    version = str((await login(INSPECTOR).info("server"))["redis_version"])
    if not version.startswith("7.0."):
        pytest.skip(f"pinned for Redis 7.0; this is {version}")
    listener = await _tracking_connection(gateway, f"{prefix}:token:")
    try:
        await service.hset(f"{prefix}:token:01SECRETID", "status", "active")
        push = await listener.read_response(timeout=2, push_request=True)
        assert push is not None
        assert [_text(key) for key in push[1]] == [f"{prefix}:token:01SECRETID"]
    finally:
        await listener.disconnect()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _tracking_connection(redis: Redis, prefix: str) -> Any:
    pool = redis.connection_pool
    options = {**pool.connection_kwargs, "protocol": 3}
    connection: Any = pool.connection_class(**options)
    await connection.connect()

    async def pass_back(push: Any) -> Any:
        return push

    connection._parser.set_invalidation_push_handler(pass_back)
    await connection.send_command("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", prefix)
    assert _text(await connection.read_response()) == "OK"
    return connection
