"""`python -m token_service --with-audit-worker`, as `make run` starts it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from tests.conftest import ADMIN
from tests.processes import service_process
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.settings import ServiceSettings


async def test_service_process_runs_the_audit_worker_too(
    settings: ServiceSettings, redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    with service_process(settings, tmp_path / "run.log", "--with-audit-worker"):
        async with TokenClient(
            redis, actor=ADMIN, key_prefix=settings.key_prefix, timeout=15
        ) as client:
            created = await client.generate("from-main", ["entities:read"])
        assert created.token is not None
        trail = keys.token_audit(created.token.id)
        for _ in range(200):
            if await redis.llen(trail):
                break
            await asyncio.sleep(0.05)
        assert await redis.llen(trail) == 1
