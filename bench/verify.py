"""Gateway verify throughput: ``Verifier`` against raw redis-py ``HGETALL``, 50 callers.

``python -m bench.verify`` starts a throwaway redis-server on a free loopback port and
stores ``TOKENS`` tokens the way the service does (``HSET <prefix>:secret:<sha256>
token_id … scopes entities:read``). Three subjects then take turns, ``ROUNDS`` rounds of
``SECONDS`` each (after a short warm-up per turn), each with ``CALLERS`` concurrent
asyncio callers on one Redis client (default pool):

* baseline: ``await redis.hgetall(key)`` per check, keys computed beforehand;
* ``Verifier.verify(token, "entities:read")``;
* the same with a ``UsageReporter`` attached (started before the first round, closed
  after the last; the uses it reported are checked against the accepted checks).

Taking turns, and reporting each subject's median round, keeps drift in the machine's
speed out of the ratios. ``redis-benchmark`` (when installed) gives an upper reference.
It prints a table, the ratios and the target; the exit code is 0 unless something crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import orjson
from redis.asyncio import Redis
from ulid import ULID

from contracts.token_format import mint, secret_digest
from token_service.gateway import Verifier
from token_service.gateway.usage import UsageReporter
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis

__all__ = ["main"]

TOKENS = 100
CALLERS = 50
ROUNDS = 3
SECONDS = 3.0
WARMUP_S = 0.5
SCOPE = "entities:read"
TARGET_RATIO = 3.0
BENCHMARK_REQUESTS = 200_000
BENCHMARK_TIMEOUT_S = 60.0

Check = Callable[[int], Awaitable[bool]]
"""One check of the token at this index; True when it was accepted."""


@dataclass
class Round:
    """What one subject did in one measured interval."""

    checks: int
    refused: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Checks per second, accepted or not."""
        return self.checks / self.seconds if self.seconds else math.nan


@dataclass
class Subject:
    """Something that checks tokens, and its measured rounds."""

    label: str
    check: Check
    rounds: list[Round] = field(default_factory=list)
    warmed_up: list[Round] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median checks/s over the rounds."""
        return statistics.median(r.per_second for r in self.rounds) if self.rounds else math.nan

    @property
    def accepted(self) -> int:
        """Checks that were accepted, warm-ups included."""
        return sum(r.checks - r.refused for r in self.rounds + self.warmed_up)

    @property
    def refused(self) -> int:
        """Checks that were not accepted, over all measured rounds."""
        return sum(r.refused for r in self.rounds)


# --- setup ---------------------------------------------------------------------------------


async def store_tokens(redis: Redis, keys: Keys, count: int) -> list[str]:
    """Mint ``count`` tokens and store their secret hashes as the service does."""
    tokens = [mint() for _ in range(count)]
    async with redis.pipeline(transaction=False) as pipe:
        for token in tokens:
            fields = ["token_id", str(ULID()), "scopes", SCOPE]
            pipe.hset(keys.secret(secret_digest(token)), items=fields)
        await pipe.execute()
    return tokens


def raw_check(redis: Redis, keys: Keys, tokens: list[str]) -> Check:
    """The baseline: one plain ``HGETALL`` per check."""
    secret_keys = [keys.secret(secret_digest(token)) for token in tokens]

    async def check(index: int) -> bool:
        return bool(await redis.hgetall(secret_keys[index]))

    return check


def verifier_check(verifier: Verifier, tokens: list[str]) -> Check:
    """``Verifier.verify(token, SCOPE)`` per check."""

    async def check(index: int) -> bool:
        return (await verifier.verify(tokens[index], SCOPE)).ok

    return check


# --- the load ------------------------------------------------------------------------------


async def _caller(check: Check, first: int, tokens: int, until: float, tally: list[int]) -> None:
    index = first
    while time.perf_counter() < until:
        if not await check(index):
            tally[1] += 1
        tally[0] += 1
        index = (index + 1) % tokens


async def load(check: Check, tokens: int, seconds: float) -> Round:
    """``CALLERS`` tasks call ``check`` back to back for ``seconds``."""
    tally = [0, 0]
    start = time.perf_counter()
    until = start + seconds
    async with asyncio.TaskGroup() as group:  # one failure cancels the other callers
        for i in range(CALLERS):
            group.create_task(_caller(check, i * 7 % tokens, tokens, until, tally))
    return Round(tally[0], tally[1], time.perf_counter() - start)


async def take_turns(subjects: Sequence[Subject], tokens: int, seconds: float) -> None:
    """``ROUNDS`` rounds; in each, every subject gets a warm-up and a counted interval."""
    for _ in range(ROUNDS):
        for subject in subjects:
            subject.warmed_up.append(await load(subject.check, tokens, WARMUP_S))
            subject.rounds.append(await load(subject.check, tokens, seconds))


async def reported_uses(redis: Redis, stream: str) -> int:
    """The sum of ``count`` over every ``TokenUsed`` on ``stream``."""
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(stream))
    return sum(int(orjson.loads(fields[b"data"])["count"]) for _, fields in entries)


# --- redis-benchmark -----------------------------------------------------------------------


def redis_benchmark(port: int, key: str) -> float | None:
    """``redis-benchmark -c CALLERS HGETALL key`` requests/s, or None when it is unavailable."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    command = [binary, "-h", "127.0.0.1", "-p", str(port), "-c", str(CALLERS)]
    command += ["-n", str(BENCHMARK_REQUESTS), "-q", "HGETALL", key]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=BENCHMARK_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    found = re.findall(r"([\d.]+) requests per second", done.stdout.replace("\r", "\n"))
    return float(found[-1]) if found else None


# --- the report ----------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _ratio(a: float, b: float | None) -> float:
    return a / b if b else math.nan


def _table(subjects: Sequence[Subject], reference: float | None) -> None:
    base = subjects[0].median
    print(f"{'subject':<30}{'checks':>10}{'median/s':>10}{'min/s':>9}{'max/s':>9}", end="")
    print(f"{'refused':>9}{'x raw':>8}")
    for subject in subjects:
        rates = [r.per_second for r in subject.rounds]
        checks = sum(r.checks for r in subject.rounds)
        print(
            f"{subject.label:<30}{checks:>10,}{subject.median:>10,.0f}{min(rates):>9,.0f}"
            f"{max(rates):>9,.0f}{subject.refused:>9,}{_ratio(subject.median, base):>8.2f}"
        )
    if reference is None:
        print("redis-benchmark: not available")
        return
    label = f"redis-benchmark -c {CALLERS} (ref)"
    print(f"{label:<30}{BENCHMARK_REQUESTS:>10,}{reference:>10,.0f}", end="")
    print(f"{'':>18}{'-':>9}{_ratio(reference, base):>8.2f}")


def report(
    subjects: Sequence[Subject],
    uses: int,
    reference: float | None,
    seconds: float,
    server: EmbeddedRedis,
) -> None:
    """Print the table, the ratios to the baseline, and the target."""
    raw, verifier, reported = subjects
    print(
        f"\nVerify benchmark: {TOKENS} tokens, {CALLERS} concurrent callers, one client with "
        f"its default pool; scope {SCOPE!r}.\n{ROUNDS} rounds, subjects taking turns, "
        f"{seconds:g} s each after {WARMUP_S:g} s warm-up; figures are per round.\n"
        f"{server.kind} on {server.url}; {os.cpu_count()} CPUs.\n"
    )
    _table(subjects, reference)
    print(
        f"\nuses reported by UsageReporter: {uses:,} of {reported.accepted:,} accepted "
        f"checks  {'(match)' if uses == reported.accepted else '(MISMATCH)'}"
    )
    if reference is not None:
        print(f"Verifier / redis-benchmark: {_ratio(verifier.median, reference):.2f}x")
    print("\nTargets (median rounds)")
    for subject in (verifier, reported):
        ratio = _ratio(subject.median, raw.median)
        ok = ratio >= TARGET_RATIO and subject.refused == 0
        print(f"  {subject.label} >= {TARGET_RATIO:g}x raw HGETALL: {ratio:.2f}x  {_verdict(ok)}")


# --- entry points --------------------------------------------------------------------------


async def measure(
    redis: Redis, keys: Keys, tokens: list[str], seconds: float
) -> tuple[list[Subject], int]:
    """Let the three subjects take turns; also the uses the reporter sent."""
    reporter = UsageReporter(redis, gateway="bench", key_prefix=keys.prefix)
    reported = Verifier(redis, key_prefix=keys.prefix, reporter=reporter)
    subjects = [
        Subject("raw redis-py HGETALL", raw_check(redis, keys, tokens)),
        Subject("Verifier", verifier_check(Verifier(redis, key_prefix=keys.prefix), tokens)),
        Subject("Verifier + UsageReporter", verifier_check(reported, tokens)),
    ]
    await reporter.start()
    try:
        await take_turns(subjects, len(tokens), seconds)
    finally:
        await reporter.close()
    return subjects, await reported_uses(redis, keys.usage)


async def run_benchmark(seconds: float) -> None:
    """Start Redis, measure, run redis-benchmark, and print the report."""
    server = EmbeddedRedis.start()
    redis = Redis.from_url(server.url)
    try:
        keys = Keys(f"bench-{uuid.uuid4().hex[:8]}")
        tokens = await store_tokens(redis, keys, TOKENS)
        subjects, uses = await measure(redis, keys, tokens, seconds)
        key = keys.secret(secret_digest(tokens[0]))
        reference = await asyncio.to_thread(redis_benchmark, server.port, key)
        report(subjects, uses, reference, seconds, server)
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.verify [--seconds S]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.verify", description=__doc__)
    parser.add_argument("--seconds", type=float, default=SECONDS, help="measured time per round")
    args = parser.parse_args(argv)
    asyncio.run(run_benchmark(args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
