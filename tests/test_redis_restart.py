"""Redis killed (SIGKILL) mid-stream and restarted on its append-only file: nothing lost, nothing
applied twice, and the service and the audit worker carry on without being restarted."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from contracts import CommandReply
from tests.conftest import ADMIN
from tests.faults import (
    Publisher,
    Sent,
    applied_per_command,
    durable_server,
    generate,
    until,
    usage_entry,
)
from tests.processes import audit_worker_process, service_process
from tests.streams import stream_data
from token_service.commands.pipeline import GROUP
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis
from token_service.settings import ServiceSettings
from workers.audit import EVENTS_GROUP, USAGE_GROUP

FIRST = 120  # tokens made before the stream that Redis dies in the middle of
SECOND = 120  # tokens made in that stream, beside rotations and revocations of the first
CHANGED = 40  # first-phase tokens rotated, and as many others revoked, in the stream
KILL_AFTER = 60  # stream commands answered before Redis is killed
DOWN_S = 1.0


@pytest.fixture
def durable_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own that fsyncs every write to its append-only file."""
    yield from durable_server()


@pytest.fixture
def durable_settings(settings: ServiceSettings, durable_redis: EmbeddedRedis) -> ServiceSettings:
    """The test's settings, on the durable server."""
    return settings.model_copy(update={"redis_url": durable_redis.url})


@pytest.fixture
async def store(durable_redis: EmbeddedRedis) -> AsyncIterator[Redis]:
    """A client of the durable server that decodes to str and retries across a restart.

    (Unlike ``Redis(...)``, a client made by ``Redis.from_url`` does not retry at all.)
    """
    client = Redis(host="127.0.0.1", port=durable_redis.port, decode_responses=True)
    yield client
    await client.aclose()


async def _groups_exist(redis: Redis, keys: Keys) -> bool:
    wanted = {(keys.commands, GROUP), (keys.events, EVENTS_GROUP), (keys.usage, USAGE_GROUP)}
    found = set()
    for stream in (keys.commands, keys.events, keys.usage):
        if await redis.exists(stream):
            found |= {(stream, g["name"]) for g in await redis.xinfo_groups(stream)}
    return wanted <= found


async def _nothing_pending(redis: Redis, keys: Keys) -> bool:
    for stream, group in ((keys.commands, GROUP), (keys.events, EVENTS_GROUP)):
        if int((await redis.xpending(stream, group))["pending"]):
            return False
    return int((await redis.xpending(keys.usage, USAGE_GROUP))["pending"]) == 0


async def _audit_trails_complete(redis: Redis, keys: Keys, events: dict[str, int]) -> bool:
    for token_id, count in events.items():
        if await redis.llen(keys.token_audit(token_id)) != count:
            return False
    return True


async def _usage_folded(redis: Redis, keys: Keys, uses: dict[str, int]) -> bool:
    for token_id, count in uses.items():
        daily = await redis.hgetall(keys.token_daily(token_id))
        if sum(int(v) for v in daily.values()) != count:
            return False
    return True


def _command(kind: str, command_id: str, token_id: str) -> dict[str, Any]:
    return {"type": kind, "command_id": command_id, "actor": ADMIN, "token_id": token_id}


async def _first_phase_tokens(publisher: Publisher) -> tuple[list[CommandReply], list[str]]:
    """``FIRST`` tokens made before the stream Redis dies in; their replies and ids."""
    first = await publisher.send_all([generate(f"first-{n:03d}") for n in range(FIRST)])
    token_ids = [reply.token.id for reply in first if reply.token is not None]
    assert len(token_ids) == FIRST
    return first, token_ids


async def _report_uses(
    redis: Redis, keys: Keys, token_ids: list[str], count: int, now_ms: int
) -> dict[str, int]:
    """One gateway report of ``count`` uses of each token; the uses by token."""
    uses = {token_id: count for token_id in token_ids}
    for token_id, used in uses.items():
        await redis.xadd(keys.usage, {"data": usage_entry(token_id, now_ms, used)})
    return uses


def _creations_rotations_and_revocations(token_ids: list[str]) -> list[dict[str, Any]]:
    """``SECOND`` new tokens, with the first ``CHANGED`` first-phase tokens rotated and as
    many others revoked in between."""
    stream: list[dict[str, Any]] = []
    for n in range(SECOND):
        stream.append(generate(f"second-{n:03d}"))
        if n < CHANGED:
            stream.append(_command("RotateToken", f"rotate-{n:03d}", token_ids[n]))
            stream.append(_command("RevokeToken", f"revoke-{n:03d}", token_ids[CHANGED + n]))
    return stream


@dataclass
class _Restart:
    """What became of the stream Redis was killed in the middle of."""

    replies: list[CommandReply]
    answered_before_kill: set[str]
    down_s: float
    done_after_relaunch_s: float


async def _answered(publisher: Publisher, command_ids: list[str], count: int) -> bool:
    sent = publisher.sent
    return sum(bool(sent[c].replies) for c in command_ids if c in sent) >= count


async def _kill_redis_mid_stream(
    redis_server: EmbeddedRedis, publisher: Publisher, stream: list[dict[str, Any]]
) -> _Restart:
    """Send ``stream``; once ``KILL_AFTER`` of it are answered, SIGKILL Redis and relaunch it
    on its append-only file ``DOWN_S`` later; returns once every command is answered."""
    sending = asyncio.create_task(publisher.send_all(stream, concurrency=10))
    stream_ids = [c["command_id"] for c in stream]
    await until(lambda: _answered(publisher, stream_ids, KILL_AFTER), 30, "stream under way")
    redis_server.kill()
    killed_at = time.monotonic()
    answered_before_kill = {cid for cid, s in publisher.sent.items() if s.replies}
    await asyncio.sleep(DOWN_S)
    redis_server.launch()
    relaunched_at = time.monotonic()
    replies: list[CommandReply] = await asyncio.wait_for(sending, 90)
    return _Restart(
        replies,
        answered_before_kill,
        down_s=relaunched_at - killed_at,
        done_after_relaunch_s=time.monotonic() - relaunched_at,
    )


async def _worker_folds_everything(redis: Redis, keys: Keys, uses: dict[str, int]) -> None:
    """Until every use is counted, every event is in its token's audit trail, and no entry
    of any group is pending."""
    await until(lambda: _usage_folded(redis, keys, uses), 40, "usage folded")
    events = await _events_per_token(redis, keys)
    await until(lambda: _audit_trails_complete(redis, keys, events), 40, "audit trails")
    await until(lambda: _nothing_pending(redis, keys), 40, "nothing pending")


def _print_figures(
    publisher: Publisher, restart: _Restart, uses: dict[str, int], started: float
) -> None:
    sent = publisher.sent
    attempts = sum(s.attempts for s in sent.values())
    duplicates = publisher.duplicates()
    answered_before_kill = restart.answered_before_kill
    print(
        f"\nFIGURES restart: commands={len(sent)} xadds={attempts} "
        f"ok_before_kill={len(answered_before_kill)} "
        f"applied_after={len(sent) - len(answered_before_kill)} "
        f"retried={publisher.retried()} duplicates_refused={duplicates} "
        f"listener_resubscribed={publisher.resubscribed} restarts_survived=1 "
        f"down_s={restart.down_s:.2f} "
        f"stream_done_after_relaunch_s={restart.done_after_relaunch_s:.2f} "
        f"usage_folded={sum(uses.values())} wall_s={time.monotonic() - started:.1f}"
    )


def _every_command_applied_once(applied: Counter[tuple[str, str]], sent: dict[str, Sent]) -> None:
    expected = {
        "second": "TokenCreated",
        "first": "TokenCreated",
        "rotate": "TokenRotated",
        "revoke": "TokenRevoked",
    }
    for command_id in sent:
        kind = expected[command_id.partition("-")[0]]
        assert applied[(kind, command_id)] == 1, (kind, command_id)
    assert sum(applied.values()) == len(sent), "an event with no command of ours"


async def _acknowledged_before_the_crash_still_there(
    redis: Redis, keys: Keys, sent: dict[str, Sent], answered_before_kill: set[str]
) -> None:
    for command_id in answered_before_kill:
        reply = sent[command_id].replies[0]
        assert reply.token is not None
        record = await redis.hgetall(keys.token(reply.token.id))
        assert record, command_id


async def _every_token_made_once(redis: Redis, keys: Keys, replies: list[CommandReply]) -> None:
    """Each creation made one token of its own name, and the index holds each once."""
    names = [
        (await redis.hget(keys.token(r.token.id), "name"))
        for r in replies
        if r.token is not None and (r.command_id or "").startswith(("first", "second"))
    ]
    assert len(names) == len(set(names)) == FIRST + SECOND
    assert await redis.llen(keys.ids) == FIRST + SECOND


async def _revoked_ones_stay_revoked(redis: Redis, keys: Keys, token_ids: list[str]) -> None:
    for n in range(CHANGED):
        assert await redis.hget(keys.token(token_ids[CHANGED + n]), "status") == "revoked"


@pytest.mark.slow
async def test_redis_killed_and_restarted_mid_stream_loses_and_repeats_nothing(
    durable_redis: EmbeddedRedis,
    durable_settings: ServiceSettings,
    store: Redis,
    keys: Keys,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    with (
        service_process(durable_settings, tmp_path / "service.log") as service,
        audit_worker_process(durable_settings, tmp_path / "audit.log") as worker,
    ):
        await until(lambda: _groups_exist(store, keys), 20, "service and worker ready")
        async with Publisher(durable_redis.url, keys) as publisher:
            first, token_ids = await _first_phase_tokens(publisher)
            now_ms = int(time.time() * 1000)
            uses = await _report_uses(store, keys, token_ids[:30], 3, now_ms)
            stream = _creations_rotations_and_revocations(token_ids)
            restart = await _kill_redis_mid_stream(durable_redis, publisher, stream)
            # Written after the restart: the worker must fold these too, without a restart.
            # Tokens the stream left alone: uses of a revoked one are not folded.
            later = token_ids[2 * CHANGED : 2 * CHANGED + 30]
            uses |= await _report_uses(store, keys, later, 5, now_ms)
            await _worker_folds_everything(store, keys, uses)
            assert service.poll() is None, "the service died"
            assert worker.poll() is None, "the audit worker died"

        applied = await applied_per_command(store, keys)
        _print_figures(publisher, restart, uses, started)

    replies, sent = restart.replies, publisher.sent
    assert all(reply.ok for reply in first + replies), [r for r in replies if not r.ok][:3]
    _every_command_applied_once(applied, sent)
    await _acknowledged_before_the_crash_still_there(
        store, keys, sent, restart.answered_before_kill
    )
    await _every_token_made_once(store, keys, first + replies)
    await _revoked_ones_stay_revoked(store, keys, token_ids)
    assert all(r.duplicate for s in sent.values() for r in s.replies[1:])
    assert await store.xlen(keys.dead_letter) == 0
    assert len(restart.answered_before_kill) > FIRST
    assert len(restart.answered_before_kill) < len(sent)


async def _events_per_token(redis: Redis, keys: Keys) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in await stream_data(redis, keys.events):
        if event.get("token_id"):
            counts[event["token_id"]] = counts.get(event["token_id"], 0) + 1
    return counts
