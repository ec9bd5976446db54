"""Revocation reach: how soon a caching gateway refuses a token once its revoke is answered.

``python -m bench.reach`` starts a throwaway redis-server on a free loopback port, the
token service (``python -m token_service``) and an administrator process (this module,
``--admin``), and in this process a gateway: a ``Verifier`` with the verdict cache under
``CALLERS`` (50) concurrent callers, each yielding to the event loop after every check
as a server does between requests. Half of the checks go to ``HOT`` (1,000) tokens that
are never revoked, half to the token about to be revoked, which is in the cache before
its revoke is sent.

For each of ``REVOCATIONS`` (1,000) tokens, the administrator sends ``RevokeToken``
through the service and notes when the reply reached it; the gateway notes its first
refusal of that token. Reach is the refusal time less the reply time, both on the
machine's monotonic clock (one clock for every process); it is below zero when the
gateway refused before the administrator heard back. Checks of the token go on for
``AFTER_S`` after the refusal: any of them that began after it and was accepted counts
as *accepted after reach*, which must be 0. A token not refused within ``REACH_LIMIT_S``
counts as unreached, and the run stops after ``RUN_LIMIT_S`` whatever is left.

Prints the p50, p99 and max reach, the accepted checks after reach and after the reply,
and the targets; the exit code is 0 unless something crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from bench.commands import ACTOR, SERVICE_GROUP, start_service, wait_ready
from bench.processes import ROOT, clean_env, stop
from bench.reach_admin import issue, serve_admin
from bench.verify import SCOPE, store_tokens
from token_service.gateway import CacheOptions, Verifier
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis

__all__ = ["main"]

REVOCATIONS = 1_000
HOT = 1_000
CALLERS = 50
AFTER_S = 0.02
REACH_LIMIT_S = 5.0
RUN_LIMIT_S = 600.0


@dataclass
class Target:
    """The token being revoked, and what the gateway saw of it."""

    secret: str
    accepted: int = 0
    refused_ns: int | None = None
    checks: list[tuple[int, bool]] = field(default_factory=list)
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    cached: asyncio.Event = field(default_factory=asyncio.Event)
    """Accepted three times: the first read filled the cache, the next checks hit it."""

    def saw(self, started_ns: int, ok: bool) -> None:
        """One check of this token, begun at ``started_ns``."""
        self.checks.append((started_ns, ok))
        if ok:
            self.accepted += 1
            if self.accepted >= 3:
                self.cached.set()
        elif self.refused_ns is None:
            self.refused_ns = time.monotonic_ns()
            self.reached.set()


@dataclass
class Gateway:
    """The load: callers checking hot tokens and the current target, and their tally."""

    verifier: Verifier
    hot: list[str]
    target: Target | None = None
    checks: int = 0
    stopping: bool = False

    async def caller(self, first: int) -> None:
        """Check back to back, every other check the target's, a loop turn after each."""
        n = first
        while not self.stopping:
            target = self.target
            if target is not None and n % 2 == 0:
                started = time.monotonic_ns()
                target.saw(started, (await self.verifier.verify(target.secret, SCOPE)).ok)
            else:
                await self.verifier.verify(self.hot[n % len(self.hot)], SCOPE)
            self.checks += 1
            n += 1
            await asyncio.sleep(0)


@dataclass
class Outcome:
    """What one revocation measured."""

    reach_ns: int | None
    round_trip_ns: int
    after_reach: int
    after_reply: int


async def revoke_one(
    gateway: Gateway, admin: asyncio.subprocess.Process, token_id: str, secret: str
) -> Outcome:
    """Have the target cached, revoke it, and wait for the gateway's first refusal."""
    assert admin.stdin is not None
    assert admin.stdout is not None
    target = Target(secret)
    gateway.target = target
    await asyncio.wait_for(target.cached.wait(), REACH_LIMIT_S)
    admin.stdin.write(f"{token_id}\n".encode())
    await admin.stdin.drain()
    sent_ns, reply_ns, ok = (await admin.stdout.readline()).decode().split()
    if ok != "ok":
        raise RuntimeError(f"revoke of {token_id} failed: {ok}")
    try:
        await asyncio.wait_for(target.reached.wait(), REACH_LIMIT_S)
        await asyncio.sleep(AFTER_S)
    except TimeoutError:
        pass
    gateway.target = None
    refused = target.refused_ns
    return Outcome(
        reach_ns=None if refused is None else refused - int(reply_ns),
        round_trip_ns=int(reply_ns) - int(sent_ns),
        after_reach=0 if refused is None else sum(ok for t, ok in target.checks if t > refused),
        after_reply=sum(ok for t, ok in target.checks if t > int(reply_ns)),
    )


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def report(
    outcomes: list[Outcome], wanted: int, seconds: float, gateway: Gateway, server: str
) -> None:
    """The reach percentiles, the accepted checks after reach and the targets."""
    reaches = [o.reach_ns / 1e6 for o in outcomes if o.reach_ns is not None]
    trips = [o.round_trip_ns / 1e6 for o in outcomes]
    unreached = sum(o.reach_ns is None for o in outcomes)
    after_reach = sum(o.after_reach for o in outcomes)
    cache = gateway.verifier.cache
    assert cache is not None
    print(
        f"\nRevocation reach: {len(outcomes):,} revocations through the service, a caching "
        f"gateway under {CALLERS} callers ({gateway.checks / seconds:,.0f} checks/s, "
        f"half of them of the token being revoked); {server}.\n"
    )
    print(f"{'':<40}{'p50':>9}{'p99':>9}{'max':>9}{'min':>9}")
    for label, values in (
        ("reach, ms (refusal - reply)", reaches),
        ("revoke round trip, ms", trips),
    ):
        print(
            f"{label:<40}{_quantile(values, 0.5):>9.3f}{_quantile(values, 0.99):>9.3f}"
            f"{max(values, default=float('nan')):>9.3f}{min(values, default=float('nan')):>9.3f}"
        )
    print(
        f"\nrefused before the reply reached the administrator: "
        f"{sum(r <= 0 for r in reaches):,} of {len(reaches):,}"
    )
    print(
        f"accepted checks begun after the reply (the reach window): "
        f"{sum(o.after_reply for o in outcomes):,}"
    )
    print(f"accepted checks begun after reach: {after_reach:,}")
    print(f"unreached within {REACH_LIMIT_S:g} s: {unreached:,}")
    print(
        f"cache: {cache.hits:,} hits, {cache.misses:,} misses, {cache.bypassed:,} bypassed, "
        f"{cache.invalidations:,} invalidations, {cache.losses} tracking losses"
    )
    ok = after_reach == 0 and unreached == 0 and len(outcomes) == wanted
    print(
        f"\nTarget: {wanted:,} revocations, 0 accepted after reach, none unreached:  "
        f"{'PASS' if ok else 'MISS'}"
    )


async def run_benchmark(revocations: int) -> None:
    """Redis, the service, the administrator, the gateway; then the revocations."""
    server = EmbeddedRedis.start()
    redis = Redis.from_url(server.url)
    keys = Keys(f"bench-{uuid.uuid4().hex[:8]}")
    service = start_service(server.url, keys.prefix)
    admin = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.reach",
        "--admin",
        server.url,
        keys.prefix,
        cwd=ROOT,
        env=clean_env(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    verifier = Verifier(redis, key_prefix=keys.prefix, cache=CacheOptions())
    try:
        await wait_ready(redis, keys.commands, SERVICE_GROUP, service)
        issued = await issue(redis, keys.prefix, revocations)
        gateway = Gateway(verifier, await store_tokens(redis, keys, HOT))
        if not await verifier.start():
            raise RuntimeError("the verdict cache's tracking did not come up")
        callers = [asyncio.create_task(gateway.caller(i * 7)) for i in range(CALLERS)]
        outcomes: list[Outcome] = []
        started = time.perf_counter()
        for token_id, secret in issued:
            if time.perf_counter() - started > RUN_LIMIT_S:
                break
            outcomes.append(await revoke_one(gateway, admin, token_id, secret))
        seconds = time.perf_counter() - started
        gateway.stopping = True
        await asyncio.gather(*callers)
        report(outcomes, revocations, seconds, gateway, f"{server.kind} on {server.url}")
    finally:
        await verifier.close()
        if admin.returncode is None:
            admin.kill()
            await admin.wait()
        stop(service)
        await redis.aclose()
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.reach`` (``--admin URL PREFIX`` is the administrator process)."""
    parser = argparse.ArgumentParser(prog="python -m bench.reach", description=__doc__)
    parser.add_argument(
        "--revocations", type=int, default=REVOCATIONS, help="how many tokens to revoke"
    )
    parser.add_argument("--admin", nargs=2, metavar=("URL", "PREFIX"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.admin:
        asyncio.run(serve_admin(*args.admin, actor=ACTOR))
    else:
        asyncio.run(run_benchmark(args.revocations))
    return 0


if __name__ == "__main__":
    sys.exit(main())
