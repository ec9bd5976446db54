"""After everything else: no plaintext token in any key, stream entry or log line.

Named to run last, so that its scan of every key also covers what earlier tests left.
"""

from __future__ import annotations

import io

from redis.asyncio import Redis

from tests.conftest import ADMIN
from tests.leaks import tokens_in_lines, tokens_in_redis
from tests.streams import listening, send_raw
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.settings import ServiceSettings


async def test_no_plaintext_token_anywhere(
    client: TokenClient,
    redis: Redis,
    keys: Keys,
    settings: ServiceSettings,
    captured_logs: io.StringIO,
) -> None:
    created = await client.generate("leak-check", ["entities:read"], description="audit")
    assert created.token is not None
    assert created.secret is not None
    rotated = await client.rotate(created.token.id, grace_seconds=600)
    assert rotated.secret is not None
    secrets = [created.secret, rotated.secret]
    async with listening(redis, "r-leak") as replies:
        pasted = {
            "type": "RevokeToken",
            "command_id": "c-leak",
            "actor": ADMIN,
            "token_id": created.token.id,
            "reason": f"leaked {created.secret}",
            "reply_to": "r-leak",
        }
        await send_raw(redis, keys.commands, data=pasted)
        unknown = {"type": "Oops", "secret": rotated.secret, "reply_to": "r-leak"}
        await send_raw(redis, keys.commands, data=unknown)
        await replies.wait_for("c-leak")
        await replies.wait_for(None)
    assert (await client.revoke(created.token.id)).ok

    leaks = await tokens_in_redis(settings.redis_url or "")
    assert leaks == [], f"plaintext tokens stored in Redis: {[key for key, _ in leaks]}"
    log_lines = captured_logs.getvalue().splitlines()
    assert log_lines, "the service logged nothing: the log check would prove nothing"
    assert tokens_in_lines(log_lines) == []
    assert all(secret not in captured_logs.getvalue() for secret in secrets)
