"""Audit worker ingestion of ``TokenUsed``: ``python -m workers.audit`` against a no-op consumer.

``python -m bench.audit`` starts a throwaway redis-server on a free loopback port, makes
``EVENTS`` ``TokenUsed`` entries (plain field ``data``, the contract's JSON) spread over
``TOKENS`` tokens, and measures two consumers taking turns for ``ROUNDS`` rounds, each
alone on the machine and each on its own prefix, with its stream filled by pipelined
XADDs before it starts (Redis is emptied after each turn):

* baseline: a FastStream batch subscriber (``batch=True``, ``max_records=500``) whose
  handler does nothing, in a subprocess (this module, ``--baseline-consumer``), its
  group created at id 0 beforehand;
* subject: ``python -m workers.audit`` with default settings (INFO logs, to /dev/null),
  with a token record for each token id.

The clock starts when ``XINFO GROUPS`` first shows the group reading, and stops when it
shows lag 0 and nothing pending; events/s counts the entries settled in between. After
each of its turns the worker's daily counts and last-use times are checked against what
was sent. It prints a table of the median round (and the spread), the ratio and the
targets; the exit code is 0 unless something crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faststream import FastStream
from faststream.redis import RedisBroker, StreamSub
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from ulid import ULID

from bench.processes import clean_env, spawn, stop
from contracts import TokenUsed, from_millis, to_millis
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis
from token_service.redis.library import load_library
from workers.audit import USAGE_GROUP

__all__ = ["main"]

EVENTS = 100_000
ROUNDS = 3
TOKENS = 1_000
COUNT_CYCLE = 5  # counts run 1..COUNT_CYCLE
SPREAD_MS = 3 * 24 * 3_600_000  # used_at spread over the last three days
CHUNK = 2_000
BATCH = 500
POLL_S = 0.005
START_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 120.0
TARGET_RATE = 40_000.0
TARGET_RATIO = 0.8
BASELINE_GROUP = "bench-noop"
GATEWAY = "bench-gateway"


# --- the baseline consumer (runs in its own process) ------------------------------------


def run_baseline_consumer(url: str, stream: str) -> None:
    """A FastStream batch subscriber that does nothing with its batches; acked after each."""
    broker = RedisBroker(url)
    consumer = f"noop-{os.getpid()}"
    sub = StreamSub(stream, group=BASELINE_GROUP, consumer=consumer, batch=True, max_records=BATCH)

    @broker.subscriber(stream=sub)
    async def noop(body: list[Any]) -> None:
        return None

    asyncio.run(FastStream(broker).run())


# --- the load ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """The entries to write, and what the worker should make of them."""

    payloads: list[bytes]
    token_ids: list[str]
    total_count: int
    last_used_ms: dict[str, int]


def make_load(events: int, tokens: int) -> Load:
    """``events`` TokenUsed JSON payloads over ``tokens`` ids, used_at spread over days."""
    start_ms = int(time.time() * 1000) - SPREAD_MS
    # Created before their first use: the worker folds no use older than its token.
    token_ids = [str(ULID.from_timestamp((start_ms - 60_000) / 1000)) for _ in range(tokens)]
    payloads: list[bytes] = []
    total = 0
    last: dict[str, int] = {}
    for i in range(events):
        token_id = token_ids[i % tokens]
        used_ms = start_ms + i * SPREAD_MS // events
        count = 1 + i % COUNT_CYCLE
        event = TokenUsed(
            token_id=token_id,
            actor=GATEWAY,
            used_at=from_millis(used_ms),
            count=count,
            gateway=GATEWAY,
        )
        payloads.append(event.to_json())
        total += count
        last[token_id] = max(last.get(token_id, 0), to_millis(event.used_at))
    return Load(payloads, token_ids, total, last)


async def fill(redis: Redis, stream: str, payloads: Sequence[bytes]) -> None:
    """XADD every payload as ``data``, in pipelined chunks."""
    for offset in range(0, len(payloads), CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for payload in payloads[offset : offset + CHUNK]:
                pipe.xadd(stream, {"data": payload})
            await pipe.execute()


async def store_token_records(redis: Redis, keys: Keys, token_ids: Sequence[str]) -> None:
    """A minimal active token record per id: the worker only needs the key to exist."""
    async with redis.pipeline(transaction=False) as pipe:
        for n, token_id in enumerate(token_ids):
            fields = ["id", token_id, "name", f"bench-{n}", "status", "active", "scopes", "x:read"]
            pipe.hset(keys.token(token_id), items=fields)
        await pipe.execute()


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """XGROUP CREATE at 0 with MKSTREAM; an existing group is fine."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


# --- watching a group drain ----------------------------------------------------------------


@dataclass
class Drain:
    """How one consumer went through the stream."""

    label: str
    events: int
    settled: int = 0  # entries acked in the timed interval
    seconds: float = math.nan  # first read seen -> lag 0 and nothing pending
    startup_s: float = math.nan  # process start -> first read seen
    complete: bool = False

    @property
    def per_second(self) -> float:
        """Entries settled per second of the timed interval."""
        return self.settled / self.seconds if self.seconds > 0 else math.nan


@dataclass
class Consumer:
    """One consumer's rounds."""

    label: str
    drains: list[Drain] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median events/s over the rounds."""
        return statistics.median(d.per_second for d in self.drains)

    @property
    def complete(self) -> bool:
        """Whether every round drained the whole stream."""
        return all(d.complete for d in self.drains)


async def group_state(redis: Redis, stream: str, group: str) -> dict[str, Any] | None:
    """The group's XINFO GROUPS entry, with text names, or None while it does not exist."""
    with contextlib.suppress(ResponseError):  # no such key yet
        for info in await redis.xinfo_groups(stream):
            if _text(info["name"]) == group:
                return dict(info)
    return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _acked(info: dict[str, Any]) -> int:
    return int(info.get("entries-read") or 0) - int(info["pending"])


def _drained(info: dict[str, Any], events: int) -> bool:
    return int(info["pending"]) == 0 and info.get("lag") == 0 and _acked(info) >= events


async def watch(
    label: str, redis: Redis, stream: str, group: str, process: subprocess.Popen[bytes]
) -> Drain:
    """Poll the group until it has acked all ``EVENTS``, or time runs out."""
    drain = Drain(label, EVENTS)
    spawned = time.perf_counter()
    first: tuple[float, int] | None = None
    until = spawned + START_TIMEOUT_S + DRAIN_TIMEOUT_S
    while time.perf_counter() < until:
        if process.poll() is not None:
            raise RuntimeError(f"{label}: exited with code {process.returncode}")
        info = await group_state(redis, stream, group)
        now = time.perf_counter()
        if info is not None and first is None and int(info.get("entries-read") or 0) > 0:
            first = (now, _acked(info))
            drain.startup_s = now - spawned
        if info is not None and first is not None:
            drain.settled, drain.seconds = _acked(info) - first[1], now - first[0]
            if _drained(info, EVENTS):
                drain.complete = True
                return drain
        await asyncio.sleep(POLL_S)
    return drain


# --- the processes -------------------------------------------------------------------------


async def bench_baseline(redis: Redis, url: str, load: Load, prefix: str) -> Drain:
    """Fill a stream, then time the no-op batch consumer through it."""
    stream = Keys(prefix).usage
    await ensure_group(redis, stream, BASELINE_GROUP)
    await fill(redis, stream, load.payloads)
    process = spawn(["-m", "bench.audit", "--baseline-consumer", url, stream], clean_env())
    try:
        return await watch("FastStream batch no-op", redis, stream, BASELINE_GROUP, process)
    finally:
        stop(process)


async def bench_worker(redis: Redis, url: str, load: Load, keys: Keys) -> Drain:
    """Store token records, fill the usage stream, then time ``python -m workers.audit``."""
    await store_token_records(redis, keys, load.token_ids)
    await fill(redis, keys.usage, load.payloads)
    await load_library(redis)  # the token service's job in a deployment; none runs here
    env = clean_env() | {"REDIS_URL": url, "TOKENS_KEY_PREFIX": keys.prefix}
    process = spawn(["-m", "workers.audit"], env)
    try:
        return await watch("workers.audit", redis, keys.usage, USAGE_GROUP, process)
    finally:
        stop(process)


# --- checking what the worker wrote --------------------------------------------------------


@dataclass
class Folded:
    """What the worker's state says, against what was sent."""

    daily_total: int
    last_used_wrong: int
    dead_letters: int


async def folded(redis: Redis, keys: Keys, load: Load) -> Folded:
    """Sum every daily count, compare every last use, count dead letters."""
    async with redis.pipeline(transaction=False) as pipe:
        for token_id in load.token_ids:
            pipe.hvals(keys.token_daily(token_id))
            pipe.hget(keys.token(token_id), "last_used_ms")
        replies: list[Any] = await pipe.execute()
    total = sum(int(v) for values in replies[0::2] for v in values)
    wrong = sum(
        1
        for token_id, last in zip(load.token_ids, replies[1::2], strict=True)
        if last is None or int(last) != load.last_used_ms[token_id]
    )
    return Folded(total, wrong, int(await redis.xlen(keys.dead_letter)))


# --- the report ----------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _row(consumer: Consumer, base: float) -> str:
    rates = [d.per_second for d in consumer.drains]
    startup = statistics.median(d.startup_s for d in consumer.drains)
    settled = sum(d.settled for d in consumer.drains)
    done = "yes" if consumer.complete else "NO"
    ratio = consumer.median / base if base else math.nan
    return (
        f"{consumer.label:<26}{settled:>10,}{consumer.median:>11,.0f}{min(rates):>9,.0f}"
        f"{max(rates):>9,.0f}{startup:>9.2f}{done:>8}{ratio:>8.2f}"
    )


def _check_line(checks: Sequence[Folded], load: Load) -> bool:
    totals = sorted({c.daily_total for c in checks})
    wrong = max(c.last_used_wrong for c in checks)
    dead = max(c.dead_letters for c in checks)
    counts_ok = totals == [load.total_count]
    print(
        f"sum of daily counts {', '.join(f'{t:,}' for t in totals)} vs sent "
        f"{load.total_count:,}: {'equal' if counts_ok else 'DIFFERENT'}; last_used_ms wrong "
        f"on at most {wrong} of {TOKENS:,} tokens; dead letters at most {dead} (every round)"
    )
    return counts_ok and wrong == 0 and dead == 0


def report(
    baseline: Consumer, worker: Consumer, checks: Sequence[Folded], load: Load, server: str
) -> None:
    """Print the table, the ratio, the correctness checks and the targets."""
    print(
        f"\nAudit ingestion benchmark: {EVENTS:,} TokenUsed over {TOKENS:,} tokens, written "
        f"before each consumer starts; batches of {BATCH}; {len(worker.drains)} rounds, "
        f"taking turns.\n{server}; {os.cpu_count()} CPUs; clock from first read seen to lag 0 "
        "and nothing pending;\nsettled: entries acked inside the timed intervals, all rounds.\n"
    )
    print(f"{'consumer':<26}{'settled':>10}{'median/s':>11}{'min/s':>9}{'max/s':>9}", end="")
    print(f"{'start s':>9}{'drained':>8}{'x noop':>8}")
    print(_row(baseline, baseline.median))
    print(_row(worker, baseline.median))
    ratio = worker.median / baseline.median if baseline.median else math.nan
    print(f"\nworkers.audit / FastStream batch no-op (medians): {ratio:.2f}x")
    ok = _check_line(checks, load) and worker.complete
    rate = worker.median
    print("\nTargets (workers.audit, median round)")
    print(f"  >= {TARGET_RATE:,.0f} events/s: {rate:,.0f}  {_verdict(ok and rate >= TARGET_RATE)}")
    print(
        f"  >= {TARGET_RATIO:g}x the FastStream batch no-op consumer: {ratio:.2f}x  "
        f"{_verdict(ok and ratio >= TARGET_RATIO)}"
    )


# --- entry points --------------------------------------------------------------------------


async def take_turns(redis: Redis, server: EmbeddedRedis, load: Load, rounds: int) -> None:
    """The no-op consumer, then the worker, ``rounds`` times; Redis is emptied after each."""
    url = server.url
    baseline = Consumer("FastStream batch no-op")
    worker = Consumer("workers.audit")
    checks: list[Folded] = []
    for _ in range(rounds):
        run = uuid.uuid4().hex[:8]
        baseline.drains.append(await bench_baseline(redis, url, load, f"bench-{run}-noop"))
        await redis.flushdb()  # our own throwaway server
        keys = Keys(f"bench-{run}")
        worker.drains.append(await bench_worker(redis, url, load, keys))
        checks.append(await folded(redis, keys, load))
        await redis.flushdb()
        if not (baseline.complete and worker.complete):
            break  # a consumer that stalled once would only stall again: report what there is
    report(baseline, worker, checks, load, f"{server.kind} on {url}")


async def run_benchmark(rounds: int) -> None:
    """Start Redis, make the load, let the two consumers take turns, and report."""
    server = EmbeddedRedis.start()
    redis = Redis.from_url(server.url)
    try:
        load = await asyncio.to_thread(make_load, EVENTS, TOKENS)
        await take_turns(redis, server, load, rounds)
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.audit``, or the baseline consumer with ``--baseline-consumer``."""
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__)
    parser.add_argument("--baseline-consumer", nargs=2, metavar=("REDIS_URL", "STREAM"))
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="turns of each consumer")
    args = parser.parse_args(argv)
    if args.baseline_consumer:
        url, stream = args.baseline_consumer
        run_baseline_consumer(url, stream)
    else:
        asyncio.run(run_benchmark(max(1, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
