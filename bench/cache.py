"""Verdict cache throughput: a caching ``Verifier`` against the uncached one, 50 callers.

``python -m bench.cache`` starts a throwaway redis-server on a free loopback port and
stores ``TOKENS`` (1,000) hot tokens the way the service does. Three subjects take
turns, as in :mod:`bench.verify` (``ROUNDS`` rounds of ``SECONDS``, each after a warm-up,
``CALLERS`` concurrent asyncio callers, one Redis client with its default pool):

* ``Verifier`` without a cache: one pipelined HMGET round trip per event-loop turn;
* ``Verifier(cache=CacheOptions())``, tracking up before the first round;
* the same, with each caller yielding to the event loop after every check, as a server
  does between requests: the price of a loop turn per check, on top of the check.

A cache hit does not wait for anything, so without the yield a caller runs on until its
round ends or a miss makes it wait; the figures are checks per second of the process
either way. Then ``redis-benchmark -c 50 -t get`` runs on the same server, as the
reference of what Redis itself serves. Beside checks per second, the table gives checks
per CPU-second of this process, which tells what a check costs on a machine shared with
other work. It prints a table, both ratios and the targets
(the cache at least ``TARGET_RATIO`` times the uncached verifier, and at least
``TARGET_RATE`` checks/s); the exit code is 0 unless something crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence

from redis.asyncio import Redis

from bench import verify
from bench.verify import Check, Subject, load, store_tokens, verifier_check
from token_service.gateway import CacheOptions, Verifier
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis

__all__ = ["main"]

TOKENS = 1_000
TARGET_RATIO = 3.0
TARGET_RATE = 150_000.0
BENCHMARK_REQUESTS = 500_000
BENCHMARK_TIMEOUT_S = 120.0


def yielding(check: Check) -> Check:
    """``check``, then one turn of the event loop."""

    async def checked(index: int) -> bool:
        accepted = await check(index)
        await asyncio.sleep(0)
        return accepted

    return checked


async def take_turns(
    subjects: Sequence[Subject], tokens: int, seconds: float
) -> dict[str, list[float]]:
    """As :func:`bench.verify.take_turns`, also noting each round's CPU time in this
    process: on a shared machine it tells what the checks cost, whatever the others took.
    """
    cpu: dict[str, list[float]] = {subject.label: [] for subject in subjects}
    for _ in range(verify.ROUNDS):
        for subject in subjects:
            subject.warmed_up.append(await load(subject.check, tokens, verify.WARMUP_S))
            started = time.process_time()
            subject.rounds.append(await load(subject.check, tokens, seconds))
            cpu[subject.label].append(time.process_time() - started)
    return cpu


def per_cpu_second(subject: Subject, cpu: list[float]) -> float:
    """Checks per CPU-second of this process, over all of the subject's rounds."""
    return sum(r.checks for r in subject.rounds) / sum(cpu) if sum(cpu) else float("nan")


def redis_benchmark_get(port: int) -> float | None:
    """``redis-benchmark -c CALLERS -t get`` requests/s, or None when it is unavailable."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    command = [binary, "-h", "127.0.0.1", "-p", str(port), "-c", str(verify.CALLERS)]
    command += ["-n", str(BENCHMARK_REQUESTS), "-q", "-t", "get"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=BENCHMARK_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    found = re.findall(r"([\d.]+) requests per second", done.stdout.replace("\r", "\n"))
    return float(found[-1]) if found else None


def _ratio(a: float, b: float | None) -> float:
    return a / b if b else float("nan")


def report(
    subjects: Sequence[Subject],
    cpu: dict[str, list[float]],
    reference: float | None,
    verifier: Verifier,
) -> None:
    """The table, both ratios, the cache's counters and the targets."""
    uncached, cached, _ = subjects
    print(f"{'subject':<40}{'checks':>11}{'median/s':>10}{'min/s':>10}{'max/s':>10}", end="")
    print(f"{'/CPU-s':>10}{'refused':>9}{'x uncached':>11}")
    for subject in subjects:
        rates = [r.per_second for r in subject.rounds]
        checks = sum(r.checks for r in subject.rounds)
        print(
            f"{subject.label:<40}{checks:>11,}{subject.median:>10,.0f}{min(rates):>10,.0f}"
            f"{max(rates):>10,.0f}{per_cpu_second(subject, cpu[subject.label]):>10,.0f}"
            f"{subject.refused:>9,}{_ratio(subject.median, uncached.median):>11.2f}"
        )
    label = f"redis-benchmark -c {verify.CALLERS} -t get (ref)"
    if reference is None:
        print(f"{label:<40} not available")
    else:
        print(f"{label:<40}{BENCHMARK_REQUESTS:>11,}{reference:>10,.0f}")
    cache = verifier.cache
    assert cache is not None
    print(
        f"\ncache: {cache.hits:,} hits, {cache.misses:,} misses, {cache.bypassed:,} bypassed, "
        f"{len(cache):,} entries (~{cache.bytes / 1024:,.0f} KiB), "
        f"{cache.losses} tracking losses"
    )
    ratio = _ratio(cached.median, uncached.median)
    print(f"\ncached / uncached Verifier:  {ratio:.2f}x")
    print(f"cached / redis-benchmark GET: {_ratio(cached.median, reference):.2f}x")
    rate_ok = cached.median >= TARGET_RATE and cached.refused == 0
    print("\nTargets (median rounds)")
    print(
        f"  cached >= {TARGET_RATIO:g}x uncached: {ratio:.2f}x  "
        f"{'PASS' if ratio >= TARGET_RATIO else 'MISS'}"
    )
    print(
        f"  cached >= {TARGET_RATE:,.0f} checks/s: {cached.median:,.0f}  "
        f"{'PASS' if rate_ok else 'MISS'}"
    )
    print(
        f"  (per CPU-second of this process: {per_cpu_second(cached, cpu[cached.label]):,.0f}; "
        f"redis-benchmark shows how much of the machine Redis got)"
    )


async def run_benchmark(seconds: float) -> None:
    """Start Redis, let the subjects take turns, run redis-benchmark, print the report."""
    server = EmbeddedRedis.start()
    redis = Redis.from_url(server.url)
    cached = None
    try:
        keys = Keys(f"bench-{uuid.uuid4().hex[:8]}")
        tokens = await store_tokens(redis, keys, TOKENS)
        cached = Verifier(redis, key_prefix=keys.prefix, cache=CacheOptions())
        if not await cached.start():
            raise RuntimeError("the verdict cache's tracking did not come up")
        subjects = [
            Subject(
                "Verifier, no cache",
                verifier_check(Verifier(redis, key_prefix=keys.prefix), tokens),
            ),
            Subject("Verifier + verdict cache", verifier_check(cached, tokens)),
            Subject("  the same, a loop turn per check", yielding(verifier_check(cached, tokens))),
        ]
        cpu = await take_turns(subjects, len(tokens), seconds)
        reference = await asyncio.to_thread(redis_benchmark_get, server.port)
        print(
            f"\nVerdict cache benchmark: {TOKENS:,} hot tokens, {verify.CALLERS} concurrent "
            f"callers, one client with its default pool; scope {verify.SCOPE!r}.\n"
            f"{verify.ROUNDS} rounds, subjects taking turns, {seconds:g} s each after "
            f"{verify.WARMUP_S:g} s warm-up; figures are per round.\n"
            f"{server.kind} on {server.url}; {os.cpu_count()} CPUs.\n"
        )
        report(subjects, cpu, reference, cached)
    finally:
        if cached is not None:
            await cached.close()
        with contextlib.suppress(Exception):
            await redis.aclose()
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.cache [--seconds S]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__)
    parser.add_argument(
        "--seconds", type=float, default=verify.SECONDS, help="measured time per round"
    )
    args = parser.parse_args(argv)
    asyncio.run(run_benchmark(args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
