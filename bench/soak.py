"""Memory over time under steady use: does anything grow without bound?

``python -m bench.soak [--minutes 10]`` starts a throwaway redis-server on a free loopback
port, with ``python -m token_service`` and ``python -m workers.audit`` on it and short
retention (usage stream 30 s, command streams 60 s, command ids 60 s, trimmed every second).
It generates ``--tokens`` (10,000) tokens, then for ``--minutes``:

* ``--gateways`` (2) in-process gateways, each a ``Verifier`` with a ``UsageReporter``
  (reporting every second), check ``--rate`` (500) tokens a second in all, drawn at
  random from the 10,000, for ``entities:read``;
* a trickle of commands, one every ``--command-every`` (2) seconds: a token is generated
  (expiring in 2 minutes), rotated with 30 s of grace, and, three times in four, revoked.

Every 30 s (10 s in runs of 3 minutes or less) it prints Redis ``used_memory``, the
audit worker's dedupe window (``{p}:seen:*``: the event ids it folded, kept for two
hours, so it grows until then), every other key (``MEMORY USAGE``, summed) and each
consumer group's backlog. At the end, over the second half: the slopes, in % of the mean
``used_memory`` per minute (flat: under 1%/min for every key but the dedupe window) and
each key family's growth; whether any backlog grew; and, once the gateways have flushed
and the worker has folded everything, whether the uses the gateways counted equal the
daily counts folded. It stops by itself: ``--minutes``, plus
at most a few minutes to set up and drain.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis

from bench.families import family_bytes
from bench.soak_report import Sample, report
from bench.stack import ADMIN, SERVICE_GROUP, Stack
from contracts import utc_now
from token_service.client import TokenClient
from token_service.gateway import UsageReporter, Verifier
from workers.audit import EVENTS_GROUP, USAGE_GROUP

__all__ = ["main"]

SCOPE = "entities:read"
TICK_S = 0.1
SETUP_CONCURRENCY = 500
DRAIN_TIMEOUT_S = 120.0
GROUPS = (
    ("commands", SERVICE_GROUP),
    ("usage", USAGE_GROUP),
    ("events", EVENTS_GROUP),
)


@dataclass
class Gateway:
    """One gateway: its own Redis connection, verifier and usage reporter."""

    name: str
    redis: Redis
    reporter: UsageReporter
    verifier: Verifier
    verdicts: dict[str, int] = field(default_factory=dict)

    @classmethod
    async def start(cls, url: str, name: str) -> Gateway:
        """Connect, and start reporting every second."""
        redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        reporter = UsageReporter(redis, gateway=name, interval_s=1.0)
        await reporter.start()
        return cls(name, redis, reporter, Verifier(redis, reporter=reporter))

    async def check(self, secrets: Sequence[str]) -> None:
        """Verify each secret, all at once (one pipeline), and count the verdicts."""
        for verdict in await asyncio.gather(*(self.verifier.verify(s, SCOPE) for s in secrets)):
            outcome = "accepted" if verdict.ok else str(getattr(verdict, "reason", "?"))
            self.verdicts[outcome] = self.verdicts.get(outcome, 0) + 1

    async def close(self) -> None:
        """Flush what was counted, and disconnect."""
        await self.reporter.close()
        await self.redis.aclose()


@dataclass
class Trickle:
    """The commands sent while the gateways run, and what came of them."""

    sent: int = 0
    failed: list[str] = field(default_factory=list)
    live: list[str] = field(default_factory=list)


async def generate_tokens(client: TokenClient, count: int) -> dict[str, str]:
    """``count`` tokens for the gateways; token id -> secret."""
    secrets: dict[str, str] = {}
    for start in range(0, count, SETUP_CONCURRENCY):
        names = [f"soak-{n:06d}" for n in range(start, min(count, start + SETUP_CONCURRENCY))]
        for reply in await asyncio.gather(*(client.generate(n, [SCOPE]) for n in names)):
            if reply.token is None or reply.secret is None:
                raise RuntimeError(f"GenerateToken failed: {reply.error}")
            secrets[reply.token.id] = reply.secret
    return secrets


async def drive_gateways(
    gateways: Sequence[Gateway], secrets: Sequence[str], rate: float, until: float
) -> None:
    """Checks at a steady ``rate`` per second, spread over the gateways, until ``until``."""
    per_tick = rate * TICK_S / len(gateways)
    owed = [0.0] * len(gateways)
    due = time.monotonic()
    while due < until:
        checks = []
        for n, gateway in enumerate(gateways):
            owed[n] += per_tick
            take, owed[n] = int(owed[n]), owed[n] - int(owed[n])
            checks.append(gateway.check(random.choices(secrets, k=take)))
        await asyncio.gather(*checks)
        due += TICK_S
        await asyncio.sleep(max(0.0, due - time.monotonic()))


async def trickle_commands(
    client: TokenClient, trickle: Trickle, every_s: float, until: float
) -> None:
    """Generate, rotate, then mostly revoke, one command every ``every_s``, until ``until``."""
    step = 0
    while time.monotonic() < until:
        try:
            if step % 3 == 0:
                expires = utc_now() + timedelta(minutes=2)
                reply = await client.generate(f"trickle-{step}", [SCOPE], expires_at=expires)
                if reply.token is not None:
                    trickle.live.append(reply.token.id)
            elif step % 3 == 1 and trickle.live:
                reply = await client.rotate(trickle.live[-1], grace_seconds=30)
            elif trickle.live and step % 12 != 11:  # one in four is left to expire
                reply = await client.revoke(trickle.live.pop())
            else:
                reply = None
            trickle.sent += reply is not None
            if reply is not None and not reply.ok:
                trickle.failed.append(str(reply.error))
        except TimeoutError as exc:
            trickle.failed.append(str(exc))
        step += 1
        await asyncio.sleep(every_s)


async def sample(stack: Stack, started: float) -> Sample:
    """``used_memory``, every key family's bytes and every group's backlog, now."""
    backlog = {}
    for label, group in GROUPS:
        state = await stack.group(getattr(stack.keys, label), group)
        backlog[label] = 0 if state is None else state.pending + state.lag
    used = await stack.used_memory()
    families = await family_bytes(stack)
    return Sample((time.monotonic() - started) / 60, used, families, backlog)


async def watch(stack: Stack, every_s: float, until: float, samples: list[Sample]) -> None:
    """Sample every ``every_s`` and print each line, until ``until``."""
    started = time.monotonic()
    while True:
        stack.check_alive()
        samples.append(await sample(stack, started))
        print(samples[-1].line(), flush=True)
        if time.monotonic() + every_s > until + 1:
            return
        await asyncio.sleep(every_s)


async def daily_total(stack: Stack, token_ids: Sequence[str]) -> int:
    """Every daily count folded for these tokens, summed."""
    total = 0
    for start in range(0, len(token_ids), 1000):
        async with stack.redis.pipeline(transaction=False) as pipe:
            for token_id in token_ids[start : start + 1000]:
                pipe.hvals(stack.keys.token_daily(token_id))
            replies: list[Any] = await pipe.execute()
        total += sum(int(v) for values in replies for v in values)
    return total


async def run_soak(args: argparse.Namespace) -> bool:
    """Set up, run for ``args.minutes``, drain, and report; True when every check holds."""
    stack = Stack.start_redis()
    try:
        await stack.start_processes(
            {
                # Trimmed every second, so the usage stream's length barely wavers.
                "TOKENS_RETENTION_EVERY_S": "1",
                "TOKENS_USAGE_RETENTION_SECONDS": "30",
                "TOKENS_COMMANDS_RETENTION_SECONDS": "60",
                "TOKENS_COMMAND_TTL_SECONDS": "60",
            }
        )
        async with TokenClient(stack.redis, actor=ADMIN, timeout=30) as client:
            print(f"generating {args.tokens:,} tokens ...", flush=True)
            secrets = await generate_tokens(client, args.tokens)
            await stack.wait_settled(stack.keys.events, EVENTS_GROUP, DRAIN_TIMEOUT_S)
            url = stack.server.url
            gateways = [await Gateway.start(url, f"soak-gw-{n}") for n in range(args.gateways)]
            until = time.monotonic() + args.minutes * 60
            every_s = 10.0 if args.minutes <= 3 else 30.0
            samples: list[Sample] = []
            trickle = Trickle()
            try:
                await asyncio.gather(
                    drive_gateways(gateways, list(secrets.values()), args.rate, until),
                    trickle_commands(client, trickle, args.command_every, until),
                    watch(stack, every_s, until, samples),
                )
            finally:
                for gateway in gateways:
                    await gateway.close()
        for stream, group in (
            (stack.keys.usage, USAGE_GROUP),
            (stack.keys.commands, SERVICE_GROUP),
        ):
            await stack.wait_settled(stream, group, DRAIN_TIMEOUT_S)
        folded = await daily_total(stack, list(secrets))
        return report(args, samples, gateways, trickle, folded)
    finally:
        await stack.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.soak``."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (10)")
    parser.add_argument("--tokens", type=int, default=10_000, help="tokens the gateways check")
    parser.add_argument("--gateways", type=int, default=2, help="in-process gateways")
    parser.add_argument("--rate", type=float, default=500.0, help="checks per second, in all")
    parser.add_argument("--command-every", type=float, default=2.0, help="seconds per command")
    args = parser.parse_args(argv)
    if not (0 < args.minutes <= 120 and 1 <= args.tokens <= 200_000 and args.gateways >= 1):
        parser.error("--minutes must be in (0, 120], --tokens in [1, 200000], --gateways >= 1")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_soak(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
