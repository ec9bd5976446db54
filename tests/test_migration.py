"""A Redis of layout 1 keeps working once the service has moved it to the current layout."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import orjson
from redis.asyncio import Redis
from typer.testing import CliRunner
from ulid import ULID

from contracts import ErrorCode, utc_now
from tests.conftest import ADMIN
from tests.gateways import verifier_for
from tests.layout_v1 import v1_generate, v1_revoke, v1_rotate
from token_service.app import build_service
from token_service.client import TokenClient
from token_service.gateway import Accepted
from token_service.keys import Keys
from token_service.redis.migration import LAYOUT, Migrated, migrate_layout
from token_service.settings import ServiceSettings
from tokenctl.cli import app as tokenctl_app


async def _old_keys(redis: Redis, keys: Keys) -> list[str]:
    p = keys.prefix
    found = [key async for key in redis.scan_iter(match=f"{p}:*")]
    return sorted(
        key
        for key in found
        if key.startswith((f"{p}:name:", f"{p}:digest:"))
        or key.endswith(":secrets")
        or key == f"{p}:index"
    )


def _tokenctl(settings: ServiceSettings, *args: str) -> tuple[int, str]:
    env = {
        "REDIS_URL": settings.redis_url or "",
        "TOKENS_KEY_PREFIX": settings.key_prefix,
        "TOKENS_RESOURCES": "entities,reports",
        "TOKENS_ACTOR": ADMIN,
        "TOKENS_TIMEOUT": "10",
        "COLUMNS": "220",
    }
    result = CliRunner().invoke(tokenctl_app, list(args), env=env)
    return result.exit_code, result.output


async def test_tokens_of_layout_1_verify_list_revoke_and_scan_after_the_migration(
    settings: ServiceSettings, redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    start = utc_now() - timedelta(hours=1)
    kept = await v1_generate(redis, keys, "Kept", start)
    rotated = await v1_generate(
        redis, keys, "Rotated", start + timedelta(minutes=1), utc_now() + timedelta(days=9)
    )
    await v1_rotate(redis, keys, rotated, timedelta(minutes=5))
    gone = await v1_generate(redis, keys, "Gone", start + timedelta(minutes=2))
    await v1_revoke(redis, keys, gone)
    assert len(await _old_keys(redis, keys)) == 9

    service = build_service(settings)
    await service.app.start()
    try:
        assert await _old_keys(redis, keys) == []
        assert await redis.get(keys.layout) == LAYOUT
        verifier = verifier_for(redis, settings)
        for token, n in [(kept, 0), (rotated, 0), (rotated, 1)]:
            verdict = await verifier.verify(token.secrets[n], "entities:read")
            assert verdict == Accepted(token.token_id, ("entities:read",)), token.name
        assert not isinstance(await verifier.verify(gone.secrets[0], "entities:read"), Accepted)

        code, out = await asyncio.to_thread(_tokenctl, settings, "list", "--all", "--json")
        assert code == 0, out
        listed = [(view["id"], view["status"]) for view in orjson.loads(out)]
        ids = [kept.token_id, rotated.token_id, gone.token_id]
        assert listed == list(zip(ids, ["active", "active", "revoked"], strict=True))
        page = await service.store.list_tokens(newest_first=True)
        assert [view.id for view in page.tokens] == ids[::-1]

        async with TokenClient(redis, actor=ADMIN, key_prefix=settings.key_prefix) as client:
            # Names moved too: taken while the holder is active, free once it is revoked.
            taken = await client.generate("kept", ["entities:read"])
            assert taken.error is not None
            assert taken.error.code is ErrorCode.CONFLICT
            assert (await client.generate("gone", ["entities:read"])).ok
            # Revoking stops the current secret and the one in its grace period at once.
            assert (await client.revoke(rotated.token_id)).ok
        for secret in rotated.secrets:
            assert not isinstance(await verifier.verify(secret, "entities:read"), Accepted)
        assert not await redis.exists(keys.token_grace(rotated.token_id))

        # Every secret ever issued is still named, the one rotated out and the revoked one.
        leaked = [rotated.secrets[0], gone.secrets[0], kept.secrets[0]]
        (tmp_path / "leak.env").write_text("".join(f"T{n}={s}\n" for n, s in enumerate(leaked)))
        code, out = await asyncio.to_thread(_tokenctl, settings, "scan", str(tmp_path), "--json")
        assert code == 1, out  # one of them is active
        found = [(f["token_id"], f["status"]) for f in orjson.loads(out)["findings"]]
        assert found == [
            (rotated.token_id, "revoked"),
            (gone.token_id, "revoked"),
            (kept.token_id, "active"),
        ]

        # Again, or after the marker is lost: nothing left to move, nothing changed.
        assert await migrate_layout(redis, keys) == Migrated()
        await redis.delete(keys.layout)
        assert await migrate_layout(redis, keys) == Migrated()
        assert await redis.llen(keys.ids) == 4
    finally:
        await service.app.stop()
        await service.store.redis.aclose()


async def test_the_migration_keeps_creation_order_with_two_processes_running_it(
    settings: ServiceSettings, redis: Redis, keys: Keys
) -> None:
    start = utc_now() - timedelta(days=2)
    old = [
        (await v1_generate(redis, keys, f"old-{n}", start + timedelta(seconds=n))).token_id
        for n in range(1_203)
    ]
    # A token made in the current layout by a process that started first goes after them.
    newer = str(ULID())
    await redis.rpush(keys.ids, newer)
    service = build_service(settings)
    try:
        await service.store.load_functions()
        # Several batches each, interleaved: each token is moved once, by one of them.
        runs = await asyncio.gather(migrate_layout(redis, keys), migrate_layout(redis, keys))
    finally:
        await service.store.redis.aclose()
    assert sum(run.tokens for run in runs) == sum(run.issued for run in runs) == len(old)
    assert await redis.lrange(keys.ids, 0, -1) == [*old, newer]
    assert await _old_keys(redis, keys) == []
    for token_id in old[:2] + old[-2:]:
        assert await redis.hexists(keys.token(token_id), "secret")
