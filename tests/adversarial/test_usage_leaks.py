"""Finding 6, last part: a gateway reporting the presented token as ``token_id`` left a
plaintext token in ``tokens:usage`` forever."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from contracts import TokenUsed, utc_now
from contracts.token_format import mint
from tests.adversarial.test_usage import _audit_settings
from tests.conftest import ADMIN, wait_for
from tests.leaks import aof_settled, tokens_in_files, tokens_in_redis
from tests.streams import stream_data
from token_service.app import build_service
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.redis.acl import dev_password, password_hash, render
from token_service.redis.connection import RedisAccess, redis_client
from token_service.redis.embedded import EmbeddedRedis
from token_service.settings import ServiceSettings
from workers.audit import USAGE_GROUP, build_worker

_INSPECTOR = "usage-inspector"
_HANDSHAKE = ("client|setinfo", "client|maint_notifications")


@pytest.fixture
def acl_aof_server(tmp_path: Path) -> Iterator[tuple[EmbeddedRedis, Keys]]:
    """A redis-server of its own enforcing our ACL file, with the append-only file on."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    acl_file = tmp_path / "users.acl"
    inspector = (
        f"user {_INSPECTOR} on #{password_hash('inspect')} resetkeys resetchannels -@all"
        " +@read +scan +info +acl|log %R~*\n"
    )
    acl_file.write_text(render(prefix) + inspector)
    server = EmbeddedRedis.start(
        appendonly=True, appendfsync="everysec", extra_args=("--aclfile", str(acl_file))
    )
    assert server.kind == "redis-server"
    yield server, Keys(prefix)
    server.stop()


def _as(server: EmbeddedRedis, user: str) -> RedisAccess:
    password = "inspect" if user == _INSPECTOR else dev_password(user)
    return RedisAccess(
        redis_url=server.url, redis_username=user, redis_password=SecretStr(password)
    )


async def _rewrites(inspector: Redis) -> int:
    info = await inspector.info("persistence")
    busy = int(info["aof_rewrite_in_progress"]) + int(info["aof_rewrite_scheduled"])
    return int(info["aof_rewrites"]) + busy


async def _report(gateway: Redis, inspector: Redis, keys: Keys, token_id: str) -> None:
    """XADD one report as the gateway; wait until it is dead-lettered and deleted."""
    used = TokenUsed(token_id=token_id, actor="gw", used_at=utc_now(), count=1, gateway="gw")
    letters = await inspector.xlen(keys.dead_letter)
    await gateway.xadd(keys.usage, {"data": used.to_json()})

    async def gone() -> bool:
        if await inspector.xlen(keys.dead_letter) == letters:
            return False
        pending = int((await inspector.xpending(keys.usage, USAGE_GROUP))["pending"])
        return pending == 0 and await inspector.xlen(keys.usage) == 0

    await wait_for(gone)


async def test_a_usage_entry_holding_a_token_is_deleted_and_the_file_rewritten_if_real(
    acl_aof_server: tuple[EmbeddedRedis, Keys], captured_logs: Any
) -> None:
    server, keys = acl_aof_server
    service = build_service(
        ServiceSettings(
            **_as(server, "token-service").access_fields(),
            key_prefix=keys.prefix,
            admins=[ADMIN],
            resources=["entities"],
            http_port=None,
            poll_ms=20,
            trust_shared_stream=True,
        )
    )
    worker = build_worker(_audit_settings(_as(server, "audit-worker"), keys.prefix))
    gateway, publisher, inspector = (
        redis_client(_as(server, user), decode_responses=True)
        for user in ("gateway", "publisher", _INSPECTOR)
    )
    await service.app.start()
    await worker.app.start()
    try:
        async with TokenClient(publisher, actor=ADMIN, key_prefix=keys.prefix, timeout=10) as c:
            created = await c.generate("leaky", ["entities:read"])
        assert created.secret is not None
        before = await _rewrites(inspector)
        # Checksum-valid but never issued: deleted, and no rewrite asked for it.
        await _report(gateway, inspector, keys, mint())
        scrubber = worker.worker.scrubber
        await asyncio.sleep(0.3)  # what it would have asked for, it has by now
        assert scrubber.idle
        assert await _rewrites(inspector) == before
        # A gateway reports the token it was shown as token_id.
        await _report(gateway, inspector, keys, created.secret)

        async def rewritten() -> bool:
            return scrubber.rewrites == 1 and scrubber.idle and await aof_settled(inspector)

        await wait_for(rewritten, limit_s=10)
        assert await _rewrites(inspector) == before + 1
    finally:
        await worker.app.stop()
        await service.app.stop()
        await service.store.redis.aclose()

    letters = await stream_data(inspector, keys.dead_letter)
    assert [letter["reason"] for letter in letters] == ["the entry holds an API token"] * 2
    assert letters[1]["fields"]["data"].count("tok_") == 1  # there, masked
    url = f"redis://{_INSPECTOR}:inspect@127.0.0.1:{server.port}/0"
    assert await tokens_in_redis(url) == []
    assert tokens_in_files((server.directory / "appendonlydir").iterdir()) == []
    refused = [e for e in await inspector.acl_log() if e.get("object") not in _HANDSHAKE]
    assert refused == []
    for client in (gateway, publisher, inspector):
        await client.aclose()
