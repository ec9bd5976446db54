"""Revocation reach to a gateway that reads from a replica, with its verdict cache.

``python -m bench.replica_reach [--revocations 200] [--wait-replicas 2]`` starts one
primary, two replicas and three sentinels on free loopback ports and the token service
through Sentinel (``TOKENS_WAIT_REPLICAS`` as given), and in this process an
administrator (``TokenClient``) and a gateway: a ``Verifier`` on
``replica_redis_client`` with the cache, so that its tracking connection is on the
replica it reads. For each token: generate it, check it twice (the second from the
cache), revoke it, and check it again from the moment the reply arrives until refused.

Prints the p50, p99 and max of reach (the refusal less the reply, on one clock), and
how many checks begun after the reply accepted the token (must be 0 when every
replica is waited for; with fewer, a replica that lags may still accept it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.failover import start_service
from bench.failover_load import ADMIN, SCOPE
from bench.ha_cluster import HaCluster
from bench.processes import stop
from token_service.client import TokenClient
from token_service.gateway import CacheOptions, Verifier
from token_service.redis.connection import RedisAccess, redis_client, replica_redis_client

__all__ = ["main"]


async def _measure(cluster: HaCluster, revocations: int) -> tuple[list[float], int]:
    access = RedisAccess(redis_sentinels=cluster.sentinels)
    primary, reads = redis_client(access), replica_redis_client(access)
    verifier = Verifier(reads, cache=CacheOptions())
    reaches: list[float] = []
    accepted_after = 0
    try:
        async with TokenClient(primary, actor=ADMIN, timeout=10) as admin:
            if not await verifier.start(timeout_s=5):
                raise RuntimeError("no tracking on the replica")
            for n in range(revocations):
                made = await admin.generate(f"reach-{n}", [SCOPE])
                assert made.secret is not None
                assert made.token is not None
                await verifier.verify(made.secret, SCOPE)
                await verifier.verify(made.secret, SCOPE)
                await admin.revoke(made.token.id)
                replied = time.monotonic()
                while (await verifier.verify(made.secret, SCOPE)).ok:
                    accepted_after += 1
                reaches.append((time.monotonic() - replied) * 1000)
    finally:
        await verifier.close()
        await primary.aclose()
        await reads.aclose()
    return reaches, accepted_after


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the figures; exit 1 if a check after a reply accepted the token."""
    parser = argparse.ArgumentParser(prog="python -m bench.replica_reach", description=__doc__)
    parser.add_argument("--revocations", type=int, default=200)
    parser.add_argument("--wait-replicas", type=int, default=2)
    options = parser.parse_args(argv)
    cluster = HaCluster.start()
    log = Path(tempfile.gettempdir()) / "bench-replica-reach-service.log"
    service = start_service(cluster, log, wait_replicas=options.wait_replicas)
    try:
        reaches, accepted = asyncio.run(_measure(cluster, options.revocations))
    finally:
        stop(service)
        cluster.stop()
    cuts = statistics.quantiles(reaches, n=100)
    print(
        f"revocations {len(reaches)}, TOKENS_WAIT_REPLICAS={options.wait_replicas}: reach"
        f" p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms, max {max(reaches):.2f} ms;"
        f" checks accepted after the reply: {accepted}"
    )
    return 1 if accepted else 0


if __name__ == "__main__":
    sys.exit(main())
