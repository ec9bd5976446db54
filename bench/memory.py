"""Memory per token: what 100,000 tokens, a day of their use and the retention leave in Redis.

``python -m bench.memory [--tokens N]`` starts a throwaway redis-server on a free loopback
port, then ``python -m token_service`` (trusting the shared stream, streams trimmed every
second with no retention for acknowledged commands and usage) and ``python -m
workers.audit`` on it, and goes through the real processes only:

1. generate: ``N`` ``GenerateToken`` commands, pipelined XADDs to ``tokens:commands``
   (no ``reply_to``); a quarter of the tokens expire (in 30 to 90 days). The service
   applies them and the audit worker folds their ``TokenCreated`` into the audit trails;
2. use: a day of simulated use, compressed in time: ``--uses`` ``TokenUsed`` per token
   (counts 1 to 5), ``used_at`` spread since the tokens' creation, pipelined XADDs to
   ``tokens:usage``, folded by the audit worker;
3. retention: until the service has trimmed the command and usage streams.

``INFO memory`` ``used_memory`` is read after each phase. Then every key is measured with
``MEMORY USAGE <key> SAMPLES 0`` (exact, no sampling) and grouped by family; per-token
figures divide a family's bytes by ``N``. The core state of a token (what lives as long
as the token: record, secret hash, grace secrets, issued secret, id, name, expiries) has a
target of at most 800 bytes per token. Every wait is bounded; the exit code is 0 unless
something failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from ulid import ULID

from bench.families import FAMILIES, Family, family_bytes
from bench.stack import ADMIN, SERVICE_GROUP, Stack
from contracts import TokenUsed, format_timestamp, from_millis
from workers.audit import EVENTS_GROUP, USAGE_GROUP

__all__ = ["main"]

TOKENS = 100_000
USES_PER_TOKEN = 3
EXPIRING_EVERY = 4  # one token in this many expires
TARGET_CORE_BYTES = 800
CHUNK = 1_000
DAY_MS = 24 * 3_600_000
SCOPES = ["entities:read", "reports:read"]
GATEWAY = "bench-gateway"
RETENTION_TIMEOUT_S = 60.0


@dataclass
class Measured:
    """Bytes and keys per family, and ``used_memory`` after each phase."""

    tokens: int
    phases: list[tuple[str, int, float]] = field(default_factory=list)
    families: dict[str, tuple[int, int]] = field(default_factory=dict)
    """label -> (keys, bytes)."""


# --- the load ------------------------------------------------------------------------------


def generate_commands(count: int, run: str, now_ms: int) -> list[bytes]:
    """``count`` GenerateToken commands, a quarter with an expiry 30 to 90 days ahead."""
    commands = []
    for i in range(count):
        body: dict[str, object] = {
            "type": "GenerateToken",
            "command_id": f"{run}-{i}",
            "actor": ADMIN,
            "name": f"integration-{i:06d}",
            "scopes": SCOPES,
        }
        if i % EXPIRING_EVERY == 0:
            days = 30 + i % 61
            body["expires_at"] = format_timestamp(from_millis(now_ms + days * DAY_MS))
        commands.append(orjson.dumps(body))
    return commands


def usage_events(token_ids: Sequence[str], uses: int, now_ms: int) -> list[bytes]:
    """``uses`` TokenUsed per token, in time order, as one UsageReporter sends them.

    A use before its token's creation is refused by the audit worker, and these tokens
    were created moments ago: the day of use is compressed into the time since then.
    """
    total = len(token_ids) * uses
    start_ms = max(ULID.from_str(token_id).milliseconds for token_id in token_ids)
    span_ms = max(1, now_ms - start_ms)
    events = []
    for n in range(total):
        used = from_millis(start_ms + n * span_ms // total)
        event = TokenUsed(
            token_id=token_ids[n % len(token_ids)],
            actor=GATEWAY,
            gateway=GATEWAY,
            used_at=used,
            occurred_at=used,
            count=1 + n % 5,
            reporter="bench-memory",
            sequence=n + 1,
        )
        events.append(event.to_json())
    return events


async def xadd_all(stack: Stack, stream: str, payloads: Sequence[bytes]) -> None:
    """XADD every payload as ``data``, in pipelined chunks."""
    for start in range(0, len(payloads), CHUNK):
        async with stack.redis.pipeline(transaction=False) as pipe:
            for payload in payloads[start : start + CHUNK]:
                pipe.xadd(stream, {"data": payload})
            await pipe.execute()


async def created_token_ids(stack: Stack) -> list[str]:
    """Every token id in a ``TokenCreated`` on the events stream (layout-independent)."""
    ids: list[str] = []
    low = "-"
    while True:
        entries = cast(list[Any], await stack.redis.xrange(stack.keys.events, min=low, count=5_000))
        if not entries:
            return ids
        for _, fields in entries:
            event = orjson.loads(fields["data"])
            if event["type"] == "TokenCreated":
                ids.append(event["token_id"])
        low = "(" + str(entries[-1][0])


# --- the phases ----------------------------------------------------------------------------


async def phase(stack: Stack, measured: Measured, label: str, started: float) -> None:
    """Note ``used_memory`` after a phase, and how long it took."""
    measured.phases.append((label, await stack.used_memory(), time.monotonic() - started))


async def generate(stack: Stack, measured: Measured, timeout_s: float) -> None:
    """Phase 1: the commands through the service, their events into the audit trails."""
    started = time.monotonic()
    now_ms = int(time.time() * 1000)
    commands = generate_commands(measured.tokens, uuid.uuid4().hex[:8], now_ms)
    await xadd_all(stack, stack.keys.commands, commands)
    await stack.wait_settled(stack.keys.commands, SERVICE_GROUP, timeout_s)
    await stack.wait_settled(stack.keys.events, EVENTS_GROUP, timeout_s)
    created = await stack.redis.xlen(stack.keys.events)
    dead = await stack.redis.xlen(stack.keys.dead_letter)
    if created != measured.tokens or dead:
        raise RuntimeError(f"{created} events and {dead} dead letters for {measured.tokens}")
    await phase(stack, measured, f"{measured.tokens:,} tokens generated", started)


async def use(stack: Stack, measured: Measured, uses: int, timeout_s: float) -> None:
    """Phase 2: a day of TokenUsed, folded by the audit worker."""
    started = time.monotonic()
    token_ids = await created_token_ids(stack)
    events = usage_events(token_ids, uses, int(time.time() * 1000))
    await xadd_all(stack, stack.keys.usage, events)
    await stack.wait_settled(stack.keys.usage, USAGE_GROUP, timeout_s)
    await phase(stack, measured, f"{len(events):,} TokenUsed folded", started)


async def retain(stack: Stack, measured: Measured) -> None:
    """Phase 3: until retention has trimmed the command and usage streams."""
    started = time.monotonic()
    while await stack.redis.xlen(stack.keys.commands) or await stack.redis.xlen(stack.keys.usage):
        stack.check_alive()
        if time.monotonic() - started > RETENTION_TIMEOUT_S:
            raise TimeoutError("the command and usage streams were not trimmed")
        await asyncio.sleep(0.2)
    await phase(stack, measured, "streams trimmed by retention", started)


async def measure_families(stack: Stack, measured: Measured) -> None:
    """``MEMORY USAGE ... SAMPLES 0`` of every key, summed by family."""
    measured.families = await family_bytes(stack)


# --- the report ----------------------------------------------------------------------------


def report(measured: Measured, uses: int, server: str) -> bool:
    """Print the phases, the families and the target; True when the target is met."""
    n = measured.tokens
    base = measured.phases[0][1]
    final = measured.phases[-1][1]
    print(
        f"\nMemory benchmark: {n:,} tokens generated through the service (pipelined XADDs of "
        f"GenerateToken on the shared stream;\nname 'integration-NNNNNN', scopes "
        f"{' '.join(SCOPES)}, no description, 1 in {EXPIRING_EVERY} expiring), "
        f"{uses} TokenUsed per token folded by the audit worker,\nthen the streams trimmed "
        f"by the service's retention. {server}; {os.cpu_count()} CPUs.\n"
    )
    print(f"{'INFO memory used_memory':<34}{'MB':>9}{'B/token':>10}{'+B/token':>10}{'s':>7}")
    previous = base
    for label, used, seconds in measured.phases:
        print(
            f"{label:<34}{used / 1e6:>9.1f}{(used - base) / n:>10.0f}"
            f"{(used - previous) / n:>10.0f}{seconds:>7.1f}"
        )
        previous = used
    print("\nMEMORY USAGE by key family (every key, SAMPLES 0), after retention")
    print(f"{'family':<26}{'core':>5}{'keys':>10}{'MB':>9}{'B/token':>9}{'% used':>8}")
    core_bytes = 0
    accounted = 0
    for family in (*FAMILIES, Family("other", "")):
        keys, size = measured.families.get(family.label, (0, 0))
        if not keys:
            continue
        accounted += size
        core_bytes += size if family.core else 0
        mark = "yes" if family.core else ""
        share = 100 * size / final
        print(
            f"{family.label:<26}{mark:>5}{keys:>10,}{size / 1e6:>9.2f}{size / n:>9.0f}{share:>8.1f}"
        )
    streams = sum(s for lb, (_, s) in measured.families.items() if lb.startswith("stream:"))
    commands = measured.families.get("command records", (0, 0))[1]
    print(
        f"\nstreams: {streams / n:.0f} B/token, {100 * streams / final:.1f}% of used_memory; "
        f"command records: {commands / n:.0f} B/token, {100 * commands / final:.1f}%"
    )
    print(
        f"MEMORY USAGE of every key: {accounted / n:.0f} B/token; used_memory above the "
        f"empty service: {(final - base) / n:.0f} B/token\n(the rest: the keyspace's "
        "hash table and expiry entries, allocator rounding)"
    )
    core = core_bytes / n
    ok = core <= TARGET_CORE_BYTES
    print(
        f"\nTarget: core state <= {TARGET_CORE_BYTES} B per token: {core:.0f}  "
        f"{'PASS' if ok else 'MISS'}"
    )
    return ok


# --- entry points --------------------------------------------------------------------------


async def run_benchmark(tokens: int, uses: int, timeout_s: float) -> bool:
    """Start everything, run the phases, measure, report, and stop everything."""
    stack = Stack.start_redis()
    try:
        env = {
            "TOKENS_RETENTION_EVERY_S": "1",
            "TOKENS_COMMANDS_RETENTION_SECONDS": "0",
            "TOKENS_USAGE_RETENTION_SECONDS": "0",
        }
        await stack.start_processes(env)
        measured = Measured(tokens)
        await phase(stack, measured, "service and worker started", time.monotonic())
        await generate(stack, measured, timeout_s)
        await use(stack, measured, uses, timeout_s)
        await retain(stack, measured)
        await measure_families(stack, measured)
        return report(measured, uses, f"{stack.server.kind} on {stack.server.url}")
    finally:
        await stack.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.memory``."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--tokens", type=int, default=TOKENS, help="tokens to generate")
    parser.add_argument("--uses", type=int, default=USES_PER_TOKEN, help="TokenUsed per token")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds each phase may take at most"
    )
    args = parser.parse_args(argv)
    asyncio.run(run_benchmark(max(1, args.tokens), max(0, args.uses), args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
