"""A service killed with SIGKILL in the middle of a burst, then restarted."""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from tests.conftest import ADMIN
from tests.faults import until
from tests.leaks import tokens_in_lines, tokens_in_redis
from tests.processes import service_process
from tests.streams import events_of, listening
from token_service.commands.pipeline import GROUP
from token_service.keys import Keys
from token_service.settings import ServiceSettings

BURST = 1000


async def _group_exists(redis: Redis, keys: Keys) -> bool:
    if not await redis.exists(keys.commands):
        return False
    groups = await redis.xinfo_groups(keys.commands)
    return any(group["name"] == GROUP for group in groups)


@pytest.mark.slow
async def test_sigkill_mid_burst_then_restart_applies_every_command_once(
    settings: ServiceSettings, redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    ids = [f"burst-{n:04d}" for n in range(BURST)]
    async with listening(redis, f"{keys.prefix}:replies:r-burst") as replies:
        with service_process(settings, log) as first:
            await until(lambda: _group_exists(redis, keys), 20, "service ready")
            for start in range(0, BURST, 100):
                async with redis.pipeline(transaction=False) as pipe:
                    for command_id in ids[start : start + 100]:
                        command = {
                            "type": "GenerateToken",
                            "command_id": command_id,
                            "actor": ADMIN,
                            "name": command_id,
                            "scopes": ["entities:read"],
                            "reply_to": f"{keys.prefix}:replies:r-burst",
                        }
                        pipe.xadd(keys.commands, {"data": orjson.dumps(command)})
                    await pipe.execute()
                if start == 500:  # the service is busy with the burst: kill it mid-batch
                    await replies.wait_count(120, limit_s=20)
                    first.send_signal(signal.SIGKILL)
                    first.wait(10)
        answered_before_restart = len({r.command_id for r in replies.received})
        with service_process(settings, log):
            await replies.wait_count(BURST, limit_s=60)
            await until(lambda: _nothing_pending(redis, keys), 20, "nothing pending")

    created = await events_of(redis, keys.events, "TokenCreated")
    duplicates = sum(reply.duplicate for reply in replies.received)
    print(  # figures for the report: run with -s to see them
        f"\nburst={BURST} answered_before_kill={answered_before_restart} "
        f"replies={len(replies.received)} duplicate_replies={duplicates} created={len(created)}"
    )
    assert sorted(event["command_id"] for event in created) == ids
    assert len({event["event_id"] for event in created}) == BURST
    assert await redis.llen(keys.ids) == BURST
    assert all(reply.ok for reply in replies.received)
    assert {reply.command_id for reply in replies.received} == set(ids)
    assert await redis.xlen(keys.dead_letter) == 0
    assert 0 < answered_before_restart < BURST
    assert await tokens_in_redis(settings.redis_url or "", f"{settings.key_prefix}:*") == []
    assert tokens_in_lines(log.read_text().splitlines()) == []


async def _nothing_pending(redis: Redis, keys: Keys) -> bool:
    return int((await redis.xpending(keys.commands, GROUP))["pending"]) == 0
