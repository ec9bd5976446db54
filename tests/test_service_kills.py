"""Two service processes share the group; one of them is SIGKILLed at random points, five
times, and restarted each time. Every command is applied exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from redis.asyncio import Redis

from tests.faults import generate, until
from tests.processes import service_process
from tests.streams import Replies, events_of, listening
from token_service.commands.pipeline import GROUP
from token_service.keys import Keys
from token_service.settings import ServiceSettings

WAVES = 6  # waves of commands; a process is killed in the middle of each but the last
WAVE = 600
BURST = WAVES * WAVE
KILLS = WAVES - 1
RESENT_AFTER = 200  # answered commands that their publishers send once more at the end


class _Fleet:
    """Two service processes at all times: a killed one is replaced at once."""

    def __init__(self, settings: ServiceSettings, logs: Path, stack: contextlib.ExitStack) -> None:
        self.settings = settings
        self.logs = logs
        self.stack = stack
        self.started = 0
        self.running: dict[str, tuple[subprocess.Popen[bytes], float]] = {}

    def start(self) -> str:
        name = f"svc-{self.started}"
        self.started += 1
        env = {"TOKENS_CONSUMER_NAME": name}
        process = self.stack.enter_context(
            service_process(self.settings, self.log_of(name), env=env)
        )
        self.running[name] = (process, time.monotonic())
        return name

    def kill(self, name: str) -> tuple[str, str]:
        """SIGKILL one and start another; returns both their consumer names."""
        process, _ = self.running.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        return name, self.start()

    def log_of(self, name: str) -> Path:
        """Where one process logs."""
        return self.logs / f"{name}.log"

    def all_alive(self) -> bool:
        return all(process.poll() is None for process, _ in self.running.values())


async def _reading(log: Path) -> bool:
    """Whether the process logging to ``log`` has its subscribers running."""
    return await asyncio.to_thread(
        lambda: log.exists() and "started successfully" in log.read_text()
    )


async def _delivered(redis: Redis, keys: Keys, count: int) -> None:
    """Until the group has handed out ``count`` entries (polled tightly: the service is fast)."""
    deadline = time.monotonic() + 30
    while True:
        (group,) = [g for g in await redis.xinfo_groups(keys.commands) if g["name"] == GROUP]
        if int(group["entries-read"] or 0) >= count:
            return
        assert time.monotonic() < deadline, f"fewer than {count} entries delivered"
        await asyncio.sleep(0.001)


async def _holding(redis: Redis, keys: Keys, consumer: str) -> None:
    """Until ``consumer`` holds entries it has not settled (it is mid-batch), or a second."""
    for _ in range(1000):
        if await _pending_of(redis, keys, consumer):
            return
        await asyncio.sleep(0.001)


async def _pending_of(redis: Redis, keys: Keys, consumer: str) -> list[str]:
    entries = await redis.xpending_range(
        keys.commands, GROUP, min="-", max="+", count=10_000, consumername=consumer
    )
    return [str(entry["message_id"]) for entry in entries]


async def _resend(redis: Redis, keys: Keys, entry_ids: list[str]) -> int:
    """What an impatient publisher does: the same command, same id, once more."""
    for entry_id in entry_ids:
        found = cast(list[tuple[str, dict[str, str]]], await redis.xrange(keys.commands, entry_id))
        await redis.xadd(keys.commands, {"data": found[0][1]["data"]})
    return len(entry_ids)


async def _send_wave(redis: Redis, keys: Keys, command_ids: list[str]) -> int:
    """XADD one wave of commands at once; how many entries the stream had before it.

    Counted in stream entries: resent commands are entries too.
    """
    before = int((await redis.xinfo_stream(keys.commands))["entries-added"])
    async with redis.pipeline(transaction=False) as pipe:
        for command_id in command_ids:
            command: dict[str, Any] = {
                **generate(command_id),
                "reply_to": f"{keys.prefix}:replies:r-kills",
            }
            pipe.xadd(keys.commands, {"data": orjson.dumps(command)})
        await pipe.execute()
    return before


@dataclass
class _Kills:
    """Who was killed where, and what the dead left behind."""

    killed: list[str] = field(default_factory=list)
    points: list[int] = field(default_factory=list)
    reclaimed: int = 0
    resent: int = 0


async def _kill_one_mid_wave(
    redis: Redis,
    keys: Keys,
    fleet: _Fleet,
    rng: random.Random,
    wave: int,
    before: int,
    kills: _Kills,
) -> None:
    """SIGKILL a random one of the fleet at a random point of the wave, while it holds
    entries; half of what it left pending is sent again at once."""
    point = rng.randint(20, WAVE // 2)
    kills.points.append(wave * WAVE + point)
    victim = rng.choice(sorted(fleet.running))
    await _delivered(redis, keys, before + point)
    await _holding(redis, keys, victim)
    name, successor = fleet.kill(victim)
    kills.killed.append(name)
    left = await _pending_of(redis, keys, name)
    kills.reclaimed += len(left)
    # Some publishers do not wait: they send the same command again at once.
    kills.resent += await _resend(redis, keys, left[: len(left) // 2])
    await until(partial(_reading, fleet.log_of(successor)), 20, "successor up")


async def _burst_with_a_kill_in_each_wave_but_the_last(
    redis: Redis, keys: Keys, fleet: _Fleet, rng: random.Random, ids: list[str]
) -> _Kills:
    kills = _Kills()
    for wave in range(WAVES):
        before = await _send_wave(redis, keys, ids[wave * WAVE : (wave + 1) * WAVE])
        if wave == WAVES - 1:
            break
        # Both are busy with the wave now: kill one at a random point of it.
        await _kill_one_mid_wave(redis, keys, fleet, rng, wave, before, kills)
    return kills


async def _sent_again_long_after_the_answer(
    redis: Redis, keys: Keys, replies: Replies, again: list[str]
) -> None:
    """What some publishers do: the same command again, long after its answer came."""
    for command_id in again:
        command = {**generate(command_id), "reply_to": f"{keys.prefix}:replies:r-kills"}
        await redis.xadd(keys.commands, {"data": orjson.dumps(command)})

    async def all_again_answered() -> bool:
        return all(len(replies.for_command(c)) >= 2 for c in again)

    await until(all_again_answered, 30, "repeats answered")


async def _every_command_applied_once(
    redis: Redis, keys: Keys, per_command: Counter[str], ids: list[str]
) -> None:
    assert set(per_command) == set(ids), "a command was never applied"
    assert max(per_command.values()) == 1, "a command was applied twice"
    assert await redis.llen(keys.ids) == BURST


def _each_first_reply_once_and_no_secret_twice(
    replies: Replies, first_replies: Counter[str | None]
) -> None:
    assert all(reply.ok for reply in replies.received)
    assert max(first_replies.values()) == 1, "two first replies to one command"
    assert all(r.secret is None for r in replies.received if r.duplicate)


@pytest.mark.slow
async def test_service_killed_five_times_mid_burst_applies_every_command_once(
    settings: ServiceSettings, redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 2**32))
    print(f"\nFIGURES service-kills: seed={seed} (rerun with FAULT_SEED={seed})")
    rng = random.Random(seed)
    ids = [f"kill-{n:05d}" for n in range(BURST)]
    started = time.monotonic()
    async with listening(redis, f"{keys.prefix}:replies:r-kills") as replies:
        with contextlib.ExitStack() as stack:
            fleet = _Fleet(settings, tmp_path, stack)
            for name in (fleet.start(), fleet.start()):
                await until(partial(_reading, fleet.log_of(name)), 20, f"{name} up")
            kills = await _burst_with_a_kill_in_each_wave_but_the_last(redis, keys, fleet, rng, ids)
            await replies.wait_count(BURST, limit_s=45)
            await _sent_again_long_after_the_answer(
                redis, keys, replies, rng.sample(ids, RESENT_AFTER)
            )
            await until(lambda: _nothing_pending(redis, keys), 30, "nothing pending")
            assert fleet.all_alive()

        created = await events_of(redis, keys.events, "TokenCreated")
        per_command = Counter(event["command_id"] for event in created)
        first_replies = Counter(r.command_id for r in replies.received if not r.duplicate)
        duplicates = sum(r.duplicate for r in replies.received)
        print(
            f"FIGURES service-kills: sent={BURST} applied={len(created)} "
            f"kills={len(kills.killed)} kill_points={kills.points} killed={kills.killed} "
            f"reclaimed={kills.reclaimed} resent_at_once={kills.resent} "
            f"resent_later={RESENT_AFTER} "
            f"duplicates_refused={duplicates} replies={len(replies.received)} "
            f"first_replies_lost_with_a_killed_process={BURST - len(first_replies)} "
            f"wall_s={time.monotonic() - started:.1f}"
        )

    assert len(kills.killed) == KILLS
    await _every_command_applied_once(redis, keys, per_command, ids)
    _each_first_reply_once_and_no_secret_twice(replies, first_replies)
    assert duplicates >= RESENT_AFTER + kills.resent
    assert await redis.xlen(keys.dead_letter) == 0
    assert kills.reclaimed > 0, "no kill left work behind: the kills came at quiet moments"


async def _nothing_pending(redis: Redis, keys: Keys) -> bool:
    return int((await redis.xpending(keys.commands, GROUP))["pending"]) == 0
