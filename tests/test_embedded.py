"""The embedded default behind `make run` when no REDIS_URL is given."""

from __future__ import annotations

from redis.asyncio import Redis

from token_service.app import build_service
from token_service.client import TokenClient
from token_service.redis.embedded import EmbeddedRedis
from token_service.settings import ServiceSettings


async def test_service_runs_on_the_fakeredis_fallback() -> None:
    server = EmbeddedRedis.start(prefer_real=False)
    assert server.kind == "fakeredis"
    service = build_service(
        ServiceSettings(
            redis_url=server.url,
            http_port=None,
            admins=["a"],
            poll_ms=20,
            trust_shared_stream=True,
        )
    )
    await service.app.start()
    redis = Redis.from_url(server.url, decode_responses=True)
    try:
        async with TokenClient(redis, actor="a") as client:
            created = await client.generate("first", ["entities:read"])
            assert created.token is not None
            assert (await client.revoke(created.token.id)).ok
    finally:
        await service.app.stop()
        await service.store.redis.aclose()
        await redis.aclose()
        server.stop()
