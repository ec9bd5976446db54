"""Command throughput and latency: the token service against a no-op FastStream consumer.

``python -m bench.commands`` starts a throwaway redis-server on a free loopback port,
then measures two consumers one after the other, each alone on the machine, with the
same client code:

* baseline: a per-message FastStream subscriber (this module, ``--baseline-consumer``)
  that only publishes ``{"command_id": ..., "ok": true}`` to the command's ``reply_to``;
* service: ``python -m token_service`` as it runs in production (INFO logs, to /dev/null).

For each: throughput of 5,000 ``GenerateToken`` commands written in pipelined chunks, and
reply latency at a steady 500 commands/s. It prints a table and the targets; the exit code
is 0 unless something crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
from faststream import FastStream
from faststream.redis import Redis as BrokerRedis
from faststream.redis import RedisBroker, StreamSub
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ResponseError

from bench.processes import clean_env, spawn, stop
from token_service.redis.embedded import EmbeddedRedis

__all__ = ["main"]

THROUGHPUT_COMMANDS = 5_000
CHUNK = 100
RATE_PER_S = 500
RATE_SECONDS = 8
WARMUP_COMMANDS = 50
PHASE_TIMEOUT_S = 60.0
START_TIMEOUT_S = 30.0
TARGET_RATE = 2_000.0
TARGET_P99_MS = 25.0
ACTOR = "bench"
SERVICE_GROUP = "token-service"
BASELINE_GROUP = "bench-baseline"


# --- the baseline consumer (runs in its own process) ------------------------------------


async def _ensure_group(redis: Redis, stream: str, group: str) -> None:
    """XGROUP CREATE at 0 with MKSTREAM, so no entry written before the start is skipped."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def run_baseline_consumer(url: str, stream: str) -> None:
    """A no-op FastStream consumer: one message per call, a tiny JSON reply for each."""
    broker = RedisBroker(url)
    consumer = f"baseline-{os.getpid()}"

    @broker.subscriber(stream=StreamSub(stream, group=BASELINE_GROUP, consumer=consumer))
    async def reply(body: dict[str, Any], redis: BrokerRedis) -> None:
        # FastStream 0.7.8 unwraps a plain `data` field holding JSON: the body is the
        # command itself. The other shape, {"data": "<json text>"}, is read too.
        command = orjson.loads(body["data"]) if "command_id" not in body else body
        payload = orjson.dumps({"command_id": command["command_id"], "ok": True})
        await redis.publish(command["reply_to"], payload)

    async def serve() -> None:
        client = Redis.from_url(url)
        try:
            await _ensure_group(client, stream, BASELINE_GROUP)
        finally:
            await client.aclose()
        await FastStream(broker).run()

    asyncio.run(serve())


# --- the client side ---------------------------------------------------------------------


class ReplyCollector:
    """Listens on one reply channel and timestamps every reply by its ``command_id``."""

    def __init__(self, redis: Redis, channel: str) -> None:
        self.redis = redis
        self.channel = channel
        self.arrived: dict[str, tuple[float, dict[str, Any]]] = {}
        self._pending: set[str] = set()
        self._all_in = asyncio.Event()
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReplyCollector:
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self.channel)
        self._task = asyncio.create_task(self._listen(self._pubsub))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _listen(self, pubsub: PubSub) -> None:
        async for message in pubsub.listen():
            now = time.perf_counter()
            if message["type"] != "message":
                continue
            reply = orjson.loads(message["data"])
            command_id = str(reply.get("command_id"))
            self.arrived.setdefault(command_id, (now, reply))
            self._pending.discard(command_id)
            if not self._pending:
                self._all_in.set()

    def expect(self, command_ids: Iterable[str]) -> None:
        """Start waiting for these commands' replies; call before sending them."""
        self._pending = {c for c in command_ids if c not in self.arrived}
        self._all_in = asyncio.Event()
        if not self._pending:
            self._all_in.set()

    async def wait(self, until: float) -> None:
        """Return when every expected reply is in, or at ``until`` (perf_counter time)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_in.wait(), max(0.0, until - time.perf_counter()))


@dataclass
class Checked:
    """What the replies of one phase said: counts of missing and failed, and samples."""

    sent: int
    received: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def missing(self) -> int:
        """Commands without any reply."""
        return self.sent - self.received


@dataclass
class Throughput:
    """A burst of commands and how fast their replies came back."""

    checked: Checked
    per_second: float


@dataclass
class Latency:
    """Reply times at a steady rate, in milliseconds, sorted."""

    checked: Checked
    millis: list[float]
    max_send_lag_ms: float

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile; NaN when nothing came back."""
        if not self.millis:
            return math.nan
        return self.millis[min(len(self.millis) - 1, max(0, math.ceil(q * len(self.millis)) - 1))]


@dataclass
class Result:
    """Everything measured for one consumer."""

    label: str
    throughput: Throughput
    latency: Latency


class Probe:
    """Sends ``GenerateToken`` commands to one stream and matches their replies."""

    def __init__(self, redis: Redis, stream: str, collector: ReplyCollector) -> None:
        self.redis = redis
        self.stream = stream
        self.collector = collector
        self.run_id = uuid.uuid4().hex[:8]

    def commands(self, tag: str, count: int) -> list[tuple[str, bytes]]:
        """``count`` commands with unique ids and names, as (command_id, JSON) pairs."""
        made = []
        for i in range(count):
            command_id = f"{ACTOR}-{self.run_id}-{tag}-{i}"
            body = {
                "type": "GenerateToken",
                "command_id": command_id,
                "actor": ACTOR,
                "name": f"{tag}-{self.run_id}-{i}",
                "scopes": ["entities:read"],
                "reply_to": self.collector.channel,
            }
            made.append((command_id, orjson.dumps(body)))
        return made

    def check(self, command_ids: Sequence[str]) -> Checked:
        """Count the replies to these commands, and those that were not ``ok``."""
        checked = Checked(sent=len(command_ids))
        for command_id in command_ids:
            got = self.collector.arrived.get(command_id)
            if got is None:
                continue
            checked.received += 1
            reply = got[1]
            if reply.get("ok") is not True:
                checked.failed += 1
                error = reply.get("error") or {}
                checked.errors[f"{error.get('code')}: {error.get('message')}"] += 1
        return checked

    async def burst(self, tag: str, count: int) -> Throughput:
        """Write ``count`` commands in pipelined chunks and wait for every reply."""
        commands = self.commands(tag, count)
        self.collector.expect(c for c, _ in commands)
        start = time.perf_counter()
        for offset in range(0, count, CHUNK):
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, payload in commands[offset : offset + CHUNK]:
                    pipe.xadd(self.stream, {"data": payload})
                await pipe.execute()
        await self.collector.wait(start + PHASE_TIMEOUT_S)
        ids = [c for c, _ in commands]
        times = [self.collector.arrived[c][0] for c in ids if c in self.collector.arrived]
        rate = len(times) / (max(times) - start) if times else 0.0
        return Throughput(self.check(ids), rate)

    async def steady(self, rate: int, seconds: int) -> Latency:
        """One XADD per command on a fixed schedule, never waiting for replies in between."""
        commands = self.commands("lat", rate * seconds)
        self.collector.expect(c for c, _ in commands)
        sent: dict[str, float] = {}
        lag = 0.0
        start = time.perf_counter() + 0.01
        for i, (command_id, payload) in enumerate(commands):
            due = start + i / rate
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            now = time.perf_counter()
            lag = max(lag, now - due)
            sent[command_id] = now
            await self.redis.xadd(self.stream, {"data": payload})
        await self.collector.wait(start + PHASE_TIMEOUT_S)
        arrived = self.collector.arrived
        millis = sorted((arrived[c][0] - t) * 1000 for c, t in sent.items() if c in arrived)
        return Latency(self.check(list(sent)), millis, lag * 1000)


async def measure(label: str, redis: Redis, stream: str) -> Result:
    """Warm up, then the burst and the steady rate, against whatever consumes ``stream``."""
    channel = f"bench:replies:{uuid.uuid4().hex}"
    async with ReplyCollector(redis, channel) as collector:
        probe = Probe(redis, stream, collector)
        warm = await probe.burst("warm", WARMUP_COMMANDS)
        if warm.checked.missing:
            raise RuntimeError(f"{label}: {warm.checked.missing} warm-up commands unanswered")
        throughput = await probe.burst("tp", THROUGHPUT_COMMANDS)
        latency = await probe.steady(RATE_PER_S, RATE_SECONDS)
    return Result(label, throughput, latency)


# --- the processes -------------------------------------------------------------------------


def start_baseline(url: str, stream: str) -> subprocess.Popen[bytes]:
    """The no-op FastStream consumer, as a subprocess."""
    return spawn(["-m", "bench.commands", "--baseline-consumer", url, stream], clean_env())


def start_service(url: str, prefix: str) -> subprocess.Popen[bytes]:
    """``python -m token_service`` on ``url``, with ``bench`` as administrator."""
    env = clean_env() | {"REDIS_URL": url, "TOKENS_ADMINS": ACTOR, "TOKENS_KEY_PREFIX": prefix}
    env["TOKENS_TRUST_SHARED_STREAM"] = "true"  # the bench writes version 1 commands
    return spawn(["-m", "token_service"], env)


async def wait_ready(
    redis: Redis, stream: str, group: str, process: subprocess.Popen[bytes]
) -> None:
    """Until ``group`` exists on ``stream``; fails if the process ends first.

    Redis 7.0 lists a consumer only once it has read an entry, so whether the consumer
    really reads is left to the warm-up, which waits for its replies.
    """
    until = time.perf_counter() + START_TIMEOUT_S
    while time.perf_counter() < until:
        if process.poll() is not None:
            raise RuntimeError(f"consumer exited with code {process.returncode} at start")
        with contextlib.suppress(ResponseError):  # no such key yet
            groups = await redis.xinfo_groups(stream)
            if any(_text(g["name"]) == group for g in groups):
                return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"group {group!r} on {stream!r} not ready after {START_TIMEOUT_S:g}s")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def bench_process(
    label: str,
    redis: Redis,
    stream: str,
    group: str,
    process: subprocess.Popen[bytes],
) -> Result:
    """Measure one consumer process, and stop it whatever happens."""
    try:
        await wait_ready(redis, stream, group, process)
        return await measure(label, redis, stream)
    finally:
        stop(process)


# --- the report ----------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _header(label: str, *columns: str) -> str:
    widths = (10, 9, 9, 9, 11, 11, 10)
    return f"{label:<28}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))


def _row(result: Result) -> str:
    lat = result.latency
    missing = f"{result.throughput.checked.missing}/{lat.checked.missing}"
    failed = f"{result.throughput.checked.failed}/{lat.checked.failed}"
    return (
        f"{result.label:<28}{result.throughput.per_second:>10,.0f}"
        f"{lat.quantile(0.5):>9.1f}{lat.quantile(0.99):>9.1f}{lat.quantile(1.0):>9.1f}"
        f"{missing:>11}{failed:>11}{lat.max_send_lag_ms:>10.1f}"
    )


def report(baseline: Result, service: Result, server: EmbeddedRedis) -> None:
    """Print the table, the ratio, the targets and any error replies."""
    print(
        f"\nCommands benchmark: {THROUGHPUT_COMMANDS:,} GenerateToken written in pipelined "
        f"chunks of {CHUNK}; then {RATE_PER_S}/s for {RATE_SECONDS} s, one XADD each.\n"
        f"{server.kind} on {server.url}; {os.cpu_count()} CPUs; "
        f"{WARMUP_COMMANDS} warm-up commands first, not counted.\n"
    )
    print(_header("consumer", "burst", "p50", "p99", "max", "missing", "not ok", "send lag"))
    print(_header("", "cmd/s", "ms", "ms", "ms", "burst/rate", "burst/rate", "ms"))
    print(_row(baseline))
    print(_row(service))
    base_rate = baseline.throughput.per_second
    ratio = service.throughput.per_second / base_rate if base_rate else math.nan
    print(f"\nservice / baseline throughput: {ratio:.2f}x")
    rate, p99 = service.throughput.per_second, service.latency.quantile(0.99)
    complete = service.throughput.checked.missing == 0 and service.latency.checked.missing == 0
    print("\nTargets (service)")
    print(
        f"  >= {TARGET_RATE:,.0f} commands/s, one handler process: {rate:,.0f}  "
        f"{_verdict(rate >= TARGET_RATE and complete)}"
    )
    print(
        f"  p99 < {TARGET_P99_MS:g} ms at {RATE_PER_S}/s: {p99:.1f} ms  "
        f"{_verdict(p99 < TARGET_P99_MS and complete)}"
    )
    for result in (baseline, service):
        _print_errors(result)


def _print_errors(result: Result) -> None:
    errors = result.throughput.checked.errors + result.latency.checked.errors
    for text, count in errors.most_common(10):
        print(f"  {result.label}: {count} replies not ok: {text}")


# --- entry points --------------------------------------------------------------------------


async def run_benchmark() -> None:
    """Start Redis, measure the baseline, then the service, and print the report."""
    server = EmbeddedRedis.start()
    redis = Redis.from_url(server.url)
    try:
        run = uuid.uuid4().hex[:8]
        stream = f"bench-{run}:baseline"
        await _ensure_group(redis, stream, BASELINE_GROUP)
        process = start_baseline(server.url, stream)
        baseline = await bench_process(
            "baseline (no-op FastStream)", redis, stream, BASELINE_GROUP, process
        )
        prefix = f"bench-{run}"
        process = start_service(server.url, prefix)
        stream = f"{prefix}:commands"
        service = await bench_process("service", redis, stream, SERVICE_GROUP, process)
        report(baseline, service, server)
    finally:
        await redis.aclose()
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.commands``, or the baseline consumer with ``--baseline-consumer``."""
    parser = argparse.ArgumentParser(prog="python -m bench.commands", description=__doc__)
    parser.add_argument("--baseline-consumer", nargs=2, metavar=("REDIS_URL", "STREAM"))
    args = parser.parse_args(argv)
    if args.baseline_consumer:
        url, stream = args.baseline_consumer
        run_baseline_consumer(url, stream)
    else:
        asyncio.run(run_benchmark())
    return 0


if __name__ == "__main__":
    sys.exit(main())
