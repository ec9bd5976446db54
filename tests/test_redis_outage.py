"""Redis away for a few seconds, killed (then restarted on its append-only file) or stalled
(SIGSTOP, connections open, nothing answered): the gateway fails closed while it lasts,
and the service and the audit worker pick up where they were once it is back."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from contracts import CommandReply
from tests.faults import (
    Publisher,
    applied_per_command,
    durable_server,
    generate,
    until,
    usage_entry,
)
from tests.processes import audit_worker_process, service_process
from token_service.commands.pipeline import GROUP
from token_service.gateway import Accepted, Rejected, RejectReason, Verifier
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis
from token_service.settings import ServiceSettings
from workers.audit import EVENTS_GROUP, USAGE_GROUP

TOKENS = 20
USAGE_BEFORE = 6000  # TokenUsed entries written just before Redis goes away
DURING = 30  # commands published while Redis is away
AFTER = 30  # and after it is back
OUTAGE_S = 3.0
CHECK_TIMEOUT_S = 0.5


@pytest.fixture
def durable_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own that fsyncs every write to its append-only file."""
    yield from durable_server()


@pytest.fixture
async def store(durable_redis: EmbeddedRedis) -> AsyncIterator[Redis]:
    """A client of the durable server that decodes to str and retries across a restart."""
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


async def _unfolded(redis: Redis, keys: Keys) -> int:
    """Usage entries the worker has not folded yet: never delivered, or delivered and pending."""
    (group,) = [g for g in await redis.xinfo_groups(keys.usage) if g["name"] == USAGE_GROUP]
    return int(group["lag"] or 0) + int(group["pending"])


async def _uses_folded(redis: Redis, keys: Keys, token_ids: list[str]) -> int:
    total = 0
    for token_id in token_ids:
        daily = await redis.hgetall(keys.token_daily(token_id))
        total += sum(int(v) for v in daily.values())
    return total


async def _nothing_pending(redis: Redis, keys: Keys) -> bool:
    for stream, group in (
        (keys.commands, GROUP),
        (keys.events, EVENTS_GROUP),
        (keys.usage, USAGE_GROUP),
    ):
        if int((await redis.xpending(stream, group))["pending"]):
            return False
    return True


class _Gateway:
    """A gateway that checks one valid token over and over, and keeps the score."""

    def __init__(self, verifier: Verifier, secret: str) -> None:
        self.verifier = verifier
        self.secret = secret
        self.denied = 0
        self.accepted = 0
        self.slowest_s = 0.0

    async def check(self) -> bool:
        started = time.monotonic()
        verdict = await self.verifier.verify(self.secret, "entities:read")
        self.slowest_s = max(self.slowest_s, time.monotonic() - started)
        if isinstance(verdict, Accepted):
            self.accepted += 1
            return True
        assert verdict == Rejected(RejectReason.UNAVAILABLE), verdict
        self.denied += 1
        return False


async def _tokens_and_a_gateway(
    publisher: Publisher, gateway_redis: Redis, keys: Keys
) -> tuple[list[str], _Gateway]:
    """``TOKENS`` tokens, and a gateway checking the first of them."""
    made = await publisher.send_all([generate(f"tok-{n:02d}") for n in range(TOKENS)])
    token_ids = [reply.token.id for reply in made if reply.token is not None]
    secret = made[0].secret
    assert secret is not None
    gateway = _Gateway(
        Verifier(gateway_redis, key_prefix=keys.prefix, timeout_s=CHECK_TIMEOUT_S), secret
    )
    return token_ids, gateway


async def _usage_backlog_behind_a_stopped_worker(
    redis: Redis, keys: Keys, worker: subprocess.Popen[bytes], log: Path, token_ids: list[str]
) -> int:
    """``USAGE_BEFORE`` uses written while the worker is held still, so that the fault is sure
    to find a backlog of them not yet folded; only once it has started, as a stop during
    FastStream's start-up (a 3 s deadline) would end it. Returns the backlog's size."""

    async def worker_started() -> bool:
        return b"started successfully" in await asyncio.to_thread(log.read_bytes)

    await until(worker_started, 20, "audit worker started")
    worker.send_signal(signal.SIGSTOP)
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(USAGE_BEFORE):
            used = usage_entry(token_ids[n % TOKENS], now_ms + n, 1)
            pipe.xadd(keys.usage, {"data": used})
        await pipe.execute()
    unfolded_at_fault = await _unfolded(redis, keys)
    worker.send_signal(signal.SIGCONT)
    return unfolded_at_fault


@dataclass
class _Outage:
    """The commands sent while Redis was away, and what the gateway made of it."""

    during: list[dict[str, Any]]
    sending: asyncio.Task[list[CommandReply]]
    accepted_during: int
    denied_during: int
    down_at: float
    outage_s: float


async def _redis_away_while_commands_and_checks_come(
    redis_server: EmbeddedRedis, fault: str, publisher: Publisher, gateway: _Gateway
) -> _Outage:
    """Redis killed or stalled for ``OUTAGE_S``, while ``DURING`` commands are sent and the
    gateway checks its token over and over; then relaunched or resumed."""
    take_away, bring_back = (
        (redis_server.kill, redis_server.launch)
        if fault == "killed"
        else (redis_server.pause, redis_server.resume)
    )
    take_away()
    down_at = time.monotonic()
    during = [generate(f"during-{n:02d}") for n in range(DURING)]
    sending = asyncio.create_task(publisher.send_all(during, concurrency=10))
    accepted_during = 0
    while time.monotonic() - down_at < OUTAGE_S:
        accepted_during += await gateway.check()
        await asyncio.sleep(0.05)
    denied_during = gateway.denied
    bring_back()
    outage_s = time.monotonic() - down_at
    return _Outage(during, sending, accepted_during, denied_during, down_at, outage_s)


@dataclass
class _Recovery:
    """How soon the gateway and the commands were back, and every command's reply."""

    after: list[dict[str, Any]]
    replies: list[CommandReply]
    gateway_back_s: float
    commands_back_s: float


async def _gateway_and_commands_come_back(
    publisher: Publisher, gateway: _Gateway, outage: _Outage
) -> _Recovery:
    """Until the gateway accepts again; then ``AFTER`` commands more, and every reply."""
    gateway_back_s = await until(gateway.check, 20, "gateway accepts again")
    after = [generate(f"after-{n:02d}") for n in range(AFTER)]
    replies = await publisher.send_all(after, concurrency=10, limit_s=60)
    replies += await asyncio.wait_for(outage.sending, 60)
    commands_back_s = time.monotonic() - outage.down_at - outage.outage_s
    return _Recovery(after, replies, gateway_back_s, commands_back_s)


async def _worker_folds_everything(redis: Redis, keys: Keys, token_ids: list[str]) -> None:
    async def all_folded() -> bool:
        return await _uses_folded(redis, keys, token_ids) >= USAGE_BEFORE

    await until(all_folded, 40, "usage folded")
    await until(lambda: _nothing_pending(redis, keys), 40, "nothing pending")


def _gateway_failed_closed(outage: _Outage, gateway: _Gateway) -> None:
    assert outage.accepted_during == 0, "the gateway let a token through while Redis was away"
    assert outage.denied_during >= OUTAGE_S / (CHECK_TIMEOUT_S + 0.1) / 2
    # generous: a 2-core machine under the whole suite can be slow to wake a coroutine
    assert gateway.slowest_s < CHECK_TIMEOUT_S + 3.0, "a check outlived its timeout"


def _every_command_applied_once(
    applied: Counter[tuple[str, str]], outage: _Outage, recovery: _Recovery
) -> None:
    every: list[dict[str, Any]] = [*outage.during, *recovery.after]
    ids = [c["command_id"] for c in every] + [f"tok-{n:02d}" for n in range(TOKENS)]
    for command_id in ids:
        assert applied[("TokenCreated", command_id)] == 1, command_id
    assert sum(applied.values()) == len(ids)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["killed", "stalled"])
async def test_redis_outage_fails_gateway_closed_and_loses_nothing(
    fault: str,
    durable_redis: EmbeddedRedis,
    settings: ServiceSettings,
    store: Redis,
    keys: Keys,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    durable = settings.model_copy(update={"redis_url": durable_redis.url})
    gateway_redis = Redis(host="127.0.0.1", port=durable_redis.port, socket_connect_timeout=0.5)
    with (
        service_process(durable, tmp_path / "service.log") as service,
        audit_worker_process(durable, tmp_path / "audit.log") as worker,
    ):
        await until(lambda: _groups_exist(store, keys), 20, "service and worker ready")
        async with Publisher(durable_redis.url, keys) as publisher:
            token_ids, gateway = await _tokens_and_a_gateway(publisher, gateway_redis, keys)
            assert await gateway.check(), "the token works before the outage"
            unfolded_at_fault = await _usage_backlog_behind_a_stopped_worker(
                store, keys, worker, tmp_path / "audit.log", token_ids
            )
            outage = await _redis_away_while_commands_and_checks_come(
                durable_redis, fault, publisher, gateway
            )
            recovery = await _gateway_and_commands_come_back(publisher, gateway, outage)
            await _worker_folds_everything(store, keys, token_ids)
            assert service.poll() is None, "the service died"
            assert worker.poll() is None, "the audit worker died"

        folded = await _uses_folded(store, keys, token_ids)
        applied = await applied_per_command(store, keys)
        print(
            f"\nFIGURES outage-{fault}: outage_s={outage.outage_s:.2f} "
            f"gateway_checks_denied={outage.denied_during} "
            f"gateway_accepted_during={outage.accepted_during} "
            f"slowest_check_s={gateway.slowest_s:.2f} "
            f"gateway_back_after_s={recovery.gateway_back_s:.2f} "
            f"commands_applied={len(applied)} during={DURING} after={AFTER} "
            f"retried={publisher.retried()} duplicates_refused={publisher.duplicates()} "
            f"all_answered_after_s={recovery.commands_back_s:.2f} usage_entries={USAGE_BEFORE} "
            f"unfolded_at_fault={unfolded_at_fault} usage_folded={folded} "
            f"wall_s={time.monotonic() - started:.1f}"
        )
    await gateway_redis.aclose()

    assert unfolded_at_fault > 0, "the fault must find uses still to fold"
    _gateway_failed_closed(outage, gateway)
    assert all(reply.ok for reply in recovery.replies)
    _every_command_applied_once(applied, outage, recovery)
    assert folded == USAGE_BEFORE, "a usage entry was lost or counted twice"
    assert await store.xlen(keys.dead_letter) == 0
