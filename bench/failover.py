"""Failover under load: SIGKILL the primary in a burst of commands while gateways check.

``python -m bench.failover [--runs 5] [--seed N]`` starts, for each run, one primary,
two replicas and three sentinels (``redis-server --sentinel``, down-after 1000 ms) on
free loopback ports, the token service through Sentinel (``TOKENS_WAIT_REPLICAS=2``:
every replica a gateway may read has a change before its ``ok`` reply), and in this
process four publishers (``TokenClient``, resending the same command on a timeout) and
two gateways (``Verifier`` with its cache, one reading from the primary, one from a
replica). After a number of acknowledged commands drawn from the seed, the primary is
killed with SIGKILL; once the sentinels name a new one it is started again, as a
supervisor would, as a replica of the new primary.

Then, on the new primary: every acknowledged command must have its outcome there
(*lost* otherwise), no command may have written two lifecycle events (*applied twice*),
and no gateway check that began after a revoke's reply may have accepted the token
(*revoked accepted*). Also printed: the seconds from the kill to the first ``ok`` reply
to a command first sent after it (*flow again*), and the share of each gateway's checks
that got an answer (not ``unavailable``) during the failover, from the kill until flow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.failover_load import ADMIN, Checkers, Ledger, publish
from bench.ha_cluster import _DATA, HaCluster
from bench.processes import ROOT, clean_env, stop
from token_service.client import TokenClient
from token_service.gateway import CacheOptions, Verifier
from token_service.keys import Keys
from token_service.redis.connection import RedisAccess, redis_client, replica_redis_client

__all__ = ["main", "run_once", "start_service"]

PUBLISHERS = 4
PER_PUBLISHER = 60


def start_service(cluster: HaCluster, log: Path, wait_replicas: int = 2) -> subprocess.Popen[bytes]:
    env = {
        **clean_env(),
        "REDIS_SENTINELS": cluster.sentinels,
        "TOKENS_TRUST_SHARED_STREAM": "true",
        "TOKENS_ADMINS": ADMIN,
        "TOKENS_CLAIM_IDLE_MS": "1000",
        "TOKENS_WAIT_REPLICAS": str(wait_replicas),
        "TOKENS_WAIT_TIMEOUT_MS": "1000",
        "LOG_LEVEL": os.environ.get("FAILOVER_LOG_LEVEL", "WARNING"),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "token_service"], cwd=ROOT, env=env, stdout=out, stderr=out
        )


async def _kill_when(cluster: HaCluster, ledger: Ledger, at: int) -> float:
    ledger.kill_at = at
    await ledger.reached.wait()
    old = cluster.primary_port()
    assert old is not None
    server = cluster.server_on(old)
    server.kill()
    killed = time.monotonic()
    print(f"killed {old} at {time.time():.3f}", file=sys.stderr)
    while True:  # until the sentinels name another primary
        new = await asyncio.to_thread(cluster.primary_port)
        if new not in (old, None):
            break
        await asyncio.sleep(0.05)
    print(f"new primary {new} at {time.time():.3f}", file=sys.stderr)
    server.extra_args = (*_DATA, "--replicaof", "127.0.0.1", str(new))
    await asyncio.to_thread(server.launch)
    return killed


async def _verify_outcomes(redis: Redis, ledger: Ledger) -> tuple[int, int]:
    """How many acknowledged commands are lost, and how many commands were applied twice."""
    keys = Keys("tokens")
    lost = 0
    for sent in ledger.acknowledged():
        assert sent.reply is not None
        assert sent.reply.token is not None
        record: dict[Any, Any] = await redis.hgetall(keys.token(sent.reply.token.id))
        status = record.get(b"status", b"")
        if not record or (sent.command.type == "RevokeToken" and status != b"revoked"):
            lost += 1
    per_command: Counter[str] = Counter()
    entries: list[Any] = await redis.xrange(keys.events) or []
    for _, fields in entries:
        event = json.loads(fields[b"data"])
        if event.get("type") in ("TokenCreated", "TokenRevoked", "TokenRotated"):
            per_command[event.get("command_id") or ""] += 1
    twice = sum(1 for command_id, n in per_command.items() if command_id and n > 1)
    return lost, twice


def _report(
    seed: int, ledger: Ledger, checkers: Checkers, killed: float, lost: int, twice: int
) -> dict[str, object]:
    after = [s for s in ledger.acknowledged() if s.first_sent > killed and s.replied_at]
    flowing = min((s.replied_at for s in after if s.replied_at), default=float("inf"))
    answered: dict[str, float] = {}
    counted: dict[str, int] = {}
    for gateway in checkers.gateways:
        during = [
            c for c in checkers.checks if c.gateway == gateway and killed <= c.started <= flowing
        ]
        got = sum(1 for c in during if not c.unavailable)
        counted[gateway] = len(during)
        answered[gateway] = round(100 * got / len(during), 2) if during else 100.0
    unconfirmed = sum(
        1
        for s in ledger.acknowledged()
        if s.reply is not None and s.reply.durability is not None and not s.reply.durability.met
    )
    return {
        "seed": seed,
        "sent": len(ledger.sent),
        "sends": sum(s.sends for s in ledger.sent),
        "acknowledged": len(ledger.acknowledged()),
        "acknowledged_unconfirmed": unconfirmed,
        "lost": lost,
        "applied_twice": twice,
        "revoked_accepted": sum(1 for c in checkers.checks if c.revoked_before and c.accepted),
        "flow_again_s": round(flowing - killed, 2),
        "checks": len(checkers.checks),
        "checks_during_failover": counted,
        "answered_during_failover_pct": answered,
    }


async def _load(cluster: HaCluster, rng: random.Random, seed: int) -> dict[str, object]:
    access = RedisAccess(redis_sentinels=cluster.sentinels)
    primary, replica = redis_client(access), replica_redis_client(access)
    timeouts = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    gateway_primary = redis_client(access, **timeouts)
    gateway_replica = replica_redis_client(access, **timeouts)
    cache = CacheOptions(heartbeat_s=0.5)
    gateways = {
        "primary": Verifier(gateway_primary, timeout_s=0.5, cache=cache),
        "replica": Verifier(gateway_replica, timeout_s=0.5, cache=cache),
    }
    ledger = Ledger()
    checkers = Checkers(gateways, ledger)
    total = PUBLISHERS * PER_PUBLISHER
    kill_at = rng.randint(total // 5, total * 4 // 5)
    try:
        async with TokenClient(primary, actor=ADMIN, timeout=3.0) as client:
            for verifier in gateways.values():
                await verifier.start(timeout_s=5)
            checking = asyncio.create_task(checkers.run(random.Random(seed + 1)))
            killing = asyncio.create_task(_kill_when(cluster, ledger, kill_at))
            await asyncio.gather(
                *(
                    publish(client, ledger, random.Random(seed * 10 + n), PER_PUBLISHER, f"p{n}")
                    for n in range(PUBLISHERS)
                )
            )
            killed = await killing
            checkers.running = False
            await checking
        lost, twice = await _verify_outcomes(primary, ledger)
        return {**_report(seed, ledger, checkers, killed, lost, twice), "kill_at": kill_at}
    finally:
        for verifier in gateways.values():
            await verifier.close()
        for redis in (primary, replica, gateway_primary, gateway_replica):
            await redis.aclose()


def run_once(seed: int, log: Path) -> dict[str, object]:
    """One run: a fresh cluster and service, the load, the kill, the findings."""
    cluster = HaCluster.start(down_after_ms=1000)
    service = start_service(cluster, log)
    try:
        return asyncio.run(_load(cluster, random.Random(seed), seed))
    finally:
        stop(service)
        cluster.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the failover ``--runs`` times and print one JSON line per run."""
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument(
        "--log", type=Path, default=Path(tempfile.gettempdir()) / "bench-failover-service.log"
    )
    options = parser.parse_args(argv)
    failed = 0
    for n in range(options.runs):
        report = run_once(options.seed + n, options.log)
        print(json.dumps(report), flush=True)
        bad = report["lost"] or report["applied_twice"] or report["revoked_accepted"]
        failed += 1 if bad else 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
