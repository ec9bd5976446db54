"""The audit worker SIGKILLed again and again while usage streams in: counts come out exact.

Thousands of ``TokenUsed`` entries over a few tokens and days, some of them retried
reports (the same event id again), are written to ``tokens:usage`` in small chunks while
the real worker process folds them. Several times the worker is killed with SIGKILL just
after a chunk lands and a fresh process is started (it claims what the dead one left
pending after ``AUDIT_CLAIM_IDLE_MS``). A second worker folds the same input on a key
prefix of its own without any fault. Both must end with exactly the values computed
here from the input: last use per token, uses per day, and the event ids marked seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import signal
import subprocess
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from redis.asyncio import Redis

from contracts import TokenUsed, from_millis, to_millis
from tests.faults import until
from tests.leaks import tokens_in_lines
from tests.processes import audit_worker_process
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.redis.store import TokenStore
from token_service.settings import ServiceSettings
from workers.audit import USAGE_GROUP

TOKENS = 4
EVENTS = 4000
REPEATS = 240
CHUNK = 40
BURST_CHUNKS = 15  # what lands at once just before a kill: many small batches to fold
BATCH = 10  # the worker's batch size: small, so a burst takes many folds
KILLS = 4  # at most 4: an entry then sees at most 5 deliveries, the worker's limit
UNKNOWN_TOKEN = "01UNKNOWNTOKEN0000000000000"
_DAY_MS = 86_400_000


@dataclass
class Input:
    """The entries to write, in order, and what folding them must give."""

    entries: list[bytes]
    event_ids: set[str]
    last_used_ms: dict[str, int] = field(default_factory=dict)
    daily: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))


def _make_input(rng: random.Random, token_ids: list[str]) -> Input:
    base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    base -= timedelta(days=2)
    events: list[bytes] = []
    expected = Input([], set())
    for n in range(EVENTS):
        token_id = UNKNOWN_TOKEN if n % 97 == 0 else rng.choice(token_ids)
        used_at = base + timedelta(milliseconds=rng.randrange(3 * _DAY_MS))
        count = rng.randint(1, 5)
        event = TokenUsed(
            event_id=f"use-{n:05d}",
            token_id=token_id,
            actor="gw",
            used_at=used_at,
            occurred_at=used_at,
            count=count,
            gateway=f"gw-{n % 3}",
        )
        events.append(event.to_json())
        expected.event_ids.add(event.event_id)
        if token_id == UNKNOWN_TOKEN:
            continue
        used_ms = to_millis(used_at)
        expected.last_used_ms[token_id] = max(expected.last_used_ms.get(token_id, 0), used_ms)
        day = used_at.strftime("%Y-%m-%d")
        expected.daily[token_id][day] = expected.daily[token_id].get(day, 0) + count
    # Retried reports: the same bytes again, somewhere after the first.
    entries = list(events)
    for original in rng.sample(range(EVENTS), REPEATS):
        entries.insert(rng.randrange(original + 1, len(entries) + 1), events[original])
    expected.entries = entries
    return expected


async def _newest_delivered(redis: Redis, keys: Keys) -> bool:
    newest = cast(list[tuple[str, object]], await redis.xrevrange(keys.usage, count=1))
    if not newest:
        return False
    groups = await redis.xinfo_groups(keys.usage)
    delivered = [g["last-delivered-id"] for g in groups if g["name"] == USAGE_GROUP]
    return delivered == [newest[0][0]]


async def _pending(redis: Redis, keys: Keys) -> int:
    return int((await redis.xpending(keys.usage, USAGE_GROUP))["pending"])


async def _folded(redis: Redis, keys: Keys) -> bool:
    # Delivered first, then nothing pending: a batch read in between would slip through.
    return await _newest_delivered(redis, keys) and await _pending(redis, keys) == 0


@dataclass
class Folded:
    """Everything the worker wrote for usage under one prefix."""

    last_used_ms: dict[str, int | None]
    daily: dict[str, dict[str, int]]
    seen: set[str]
    unknown_keys: list[str]


async def _read_back(redis: Redis, keys: Keys, token_ids: list[str], usage_ids: set[str]) -> Folded:
    last: dict[str, int | None] = {}
    daily: dict[str, dict[str, int]] = {}
    for token_id in token_ids:
        value = await redis.hget(keys.token(token_id), "last_used_ms")
        last[token_id] = None if value is None else int(value)
        counts = cast(dict[str, str], await redis.hgetall(keys.token_daily(token_id)))
        daily[token_id] = {day: int(n) for day, n in counts.items()}
    seen: set[str] = set()
    async for key in redis.scan_iter(match=f"{keys.prefix}:seen:*", count=1000):
        seen |= cast(set[str], await redis.smembers(key)) & usage_ids  # lifecycle event ids aside
    unknown = [k async for k in redis.scan_iter(match=f"{keys.prefix}:token:{UNKNOWN_TOKEN}*")]
    return Folded(last, daily, seen, unknown)


async def _write(redis: Redis, streams: list[str], chunk: list[bytes]) -> list[str]:
    """XADD ``chunk`` to each stream; the entry ids in the first."""
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            for data in chunk:
                pipe.xadd(stream, {"data": data})
        ids = await pipe.execute()
    return cast(list[str], ids[: len(chunk)])


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


async def _delivered_past(redis: Redis, keys: Keys, entry_id: str) -> bool:
    groups = await redis.xinfo_groups(keys.usage)
    (group,) = [g for g in groups if g["name"] == USAGE_GROUP]
    return _id(group["last-delivered-id"]) >= _id(entry_id)


async def _tokens_under_both_prefixes(
    client: TokenClient, redis: Redis, keys: Keys, clean_keys: Keys
) -> list[str]:
    """``TOKENS`` tokens made by the service, copied as they are under the clean prefix."""
    token_ids = []
    for n in range(TOKENS):
        reply = await client.generate(f"used-{n}", ["entities:read"])
        assert reply.token is not None
        token_ids.append(reply.token.id)
    for token_id in token_ids:  # the same tokens exist under the clean prefix
        record = cast(dict[str, str], await redis.hgetall(keys.token(token_id)))
        await redis.hset(clean_keys.token(token_id), mapping=record)  # type: ignore[arg-type]
    return token_ids


class _FaultyRun:
    """The audit worker under test, fed chunk after chunk and killed in bursts, a fresh
    process (logging to a file of its own) after each kill; the clean prefix gets the same
    chunks."""

    def __init__(
        self,
        redis: Redis,
        settings: ServiceSettings,
        clean_keys: Keys,
        rng: random.Random,
        logs: Path,
    ) -> None:
        self.redis, self.settings, self.rng, self.logs = redis, settings, rng, logs
        self.keys = Keys(settings.key_prefix)
        self.streams = [self.keys.usage, clean_keys.usage]
        self.generation = 0
        self.pending_at_kill: list[int] = []
        self._stack = ExitStack()
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        log = self.logs / f"audit-{self.generation}.log"
        env = {"AUDIT_BATCH_SIZE": str(BATCH)}
        return self._stack.enter_context(audit_worker_process(self.settings, log, env=env))

    async def write_all_with_kills(self, chunks: list[list[bytes]], kill_after: list[int]) -> None:
        """Every chunk; at each chunk in ``kill_after``, a burst of ``BURST_CHUNKS`` chunks
        that the worker is killed in the middle of."""
        n = 0
        while n < len(chunks):
            if n not in kill_after:
                await _write(self.redis, self.streams, chunks[n])
                await asyncio.sleep(0.01)
                n += 1
                continue
            await self._kill_mid_burst(
                [data for chunk in chunks[n : n + BURST_CHUNKS] for data in chunk]
            )
            n += BURST_CHUNKS

    async def _kill_mid_burst(self, burst: list[bytes]) -> None:
        """Let this worker catch up once, so that it surely runs; then land a burst and kill
        it once it has read into the burst, before it has read it all."""
        redis, keys = self.redis, self.keys
        await until(lambda: _newest_delivered(redis, keys), 30, "worker catches up")
        ids = await _write(redis, self.streams, burst)
        mark = ids[self.rng.randrange(len(burst) // 4, len(burst) * 3 // 4)]
        await until(functools.partial(_delivered_past, redis, keys, mark), 30, "burst read")
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.pending_at_kill.append(await _pending(redis, keys))
        self._stack.close()
        self._stack = ExitStack()
        self.generation += 1
        self.process = self._start()

    def close(self) -> None:
        self._stack.close()


def _folded_exactly_as_computed(faulty: Folded, reference: Folded, given: Input) -> None:
    assert faulty == reference
    assert faulty.last_used_ms == given.last_used_ms
    assert faulty.daily == given.daily
    assert faulty.seen == given.event_ids
    assert faulty.unknown_keys == []


async def _readers_see_the_last_uses(
    redis: Redis, keys: Keys, token_ids: list[str], given: Input
) -> None:
    store = TokenStore(redis, keys, 1000)
    for token_id in token_ids:
        view = await store.get(token_id)
        assert view is not None
        assert view.last_used_at == from_millis(given.last_used_ms[token_id])


def _no_token_in_the_workers_logs(logs: Path) -> None:
    text = "".join(path.read_text() for path in sorted(logs.glob("audit-*.log")))
    assert tokens_in_lines(text.splitlines()) == []


@pytest.mark.slow
async def test_audit_worker_killed_at_random_points_counts_exactly_like_a_clean_run(
    client: TokenClient, settings: ServiceSettings, redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    seed = int(os.environ.get("FAULT_SEED", random.randrange(2**32)))
    print(f"\nFIGURES audit-kills: seed={seed} (FAULT_SEED={seed} repeats this run)")
    rng = random.Random(seed)
    clean = settings.model_copy(update={"key_prefix": f"{settings.key_prefix}-clean"})
    clean_keys = Keys(clean.key_prefix)
    token_ids = await _tokens_under_both_prefixes(client, redis, keys, clean_keys)
    given = _make_input(rng, token_ids)
    chunks = [given.entries[i : i + CHUNK] for i in range(0, len(given.entries), CHUNK)]
    kill_after = sorted(rng.sample(range(5, len(chunks) - 5, BURST_CHUNKS + 1), KILLS))

    with ExitStack() as clean_run:
        clean_run.enter_context(audit_worker_process(clean, tmp_path / "audit-clean.log"))
        faulty_run = _FaultyRun(redis, settings, clean_keys, rng, tmp_path)
        clean_run.enter_context(contextlib.closing(faulty_run))
        await faulty_run.write_all_with_kills(chunks, kill_after)
        await until(lambda: _folded(redis, keys), 45, "faulty run folds everything")
        await until(lambda: _folded(redis, clean_keys), 45, "clean run folds everything")
        assert faulty_run.process.poll() is None, "the last worker died by itself"
    generation, pending_at_kill = faulty_run.generation, faulty_run.pending_at_kill

    faulty = await _read_back(redis, keys, token_ids, given.event_ids)
    reference = await _read_back(redis, clean_keys, token_ids, given.event_ids)
    equal = faulty == reference
    print(
        f"FIGURES audit-kills: entries={len(given.entries)} events={EVENTS}"
        f" repeats={REPEATS} kills={generation} pending_at_each_kill={pending_at_kill}"
        f" tokens={TOKENS}+1 unknown days={sum(len(d) for d in faulty.daily.values())}"
        f" final_counts_equal={equal}"
    )
    assert generation == KILLS
    assert any(pending_at_kill), "no kill left entries pending: the claim path went untested"
    _folded_exactly_as_computed(faulty, reference, given)
    await _readers_see_the_last_uses(redis, keys, token_ids, given)
    for stream_keys in (keys, clean_keys):
        assert await redis.xlen(stream_keys.dead_letter) == 0
    _no_token_in_the_workers_logs(tmp_path)
