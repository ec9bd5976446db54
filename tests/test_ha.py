"""Replicas and Sentinel, with real processes: one primary, two replicas, three sentinels.

The service waits for replicas before an ``ok`` reply and says how many confirmed; a
gateway reading from a replica keeps its cache honest through tracking on that replica,
and answers while the primary does not.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from bench.ha_cluster import HaCluster
from contracts import Durability
from token_service.app import Service, build_service
from token_service.client import TokenClient
from token_service.gateway import CacheOptions, Verifier
from token_service.redis.connection import RedisAccess, redis_client, replica_redis_client
from token_service.settings import ServiceSettings

pytestmark = pytest.mark.ha

ADMIN = "alice"
SCOPE = "entities:read"


@pytest.fixture(scope="module")
def cluster() -> Iterator[HaCluster]:
    """One primary, two replicas, three sentinels (down-after 1000 ms)."""
    started = HaCluster.start(down_after_ms=1000)
    yield started
    started.stop()


@pytest.fixture
def ha_settings(cluster: HaCluster) -> ServiceSettings:
    """The service through Sentinel, waiting for both replicas for 300 ms at most."""
    return ServiceSettings(
        redis_sentinels=cluster.sentinels.split(","),
        http_port=None,
        key_prefix=f"t{uuid.uuid4().hex[:10]}",
        admins=[ADMIN],
        consumer_name=f"test-{uuid.uuid4().hex[:6]}",
        claim_idle_ms=500,
        poll_ms=20,
        trust_shared_stream=True,
        wait_replicas=2,
        wait_timeout_ms=300,
    )


@pytest.fixture
async def ha_service(ha_settings: ServiceSettings) -> AsyncIterator[Service]:
    """The command handler, through Sentinel, in this test's event loop."""
    built = build_service(ha_settings)
    await built.app.start()
    yield built
    await built.app.stop()
    await built.store.redis.aclose()


@pytest.fixture
async def primary(ha_settings: ServiceSettings) -> AsyncIterator[Redis]:
    """A client of the primary, found through Sentinel."""
    client = redis_client(ha_settings)
    yield client
    await client.aclose()


@pytest.fixture
async def admin(
    ha_service: Service, primary: Redis, ha_settings: ServiceSettings
) -> AsyncIterator[TokenClient]:
    """An administrator's client of the service."""
    async with TokenClient(primary, actor=ADMIN, key_prefix=ha_settings.key_prefix) as client:
        yield client


def _replicas(cluster: HaCluster) -> list[int]:
    primary = cluster.primary_port()
    return [server.port for server in cluster.servers if server.port != primary]


async def test_an_ok_reply_comes_once_every_replica_has_the_change(
    admin: TokenClient, ha_settings: ServiceSettings, cluster: HaCluster
) -> None:
    reply = await admin.generate("replicated", [SCOPE])
    assert reply.ok
    assert reply.durability == Durability(wanted=2, confirmed=2)
    assert reply.token is not None
    for port in _replicas(cluster):  # read at once: no waiting for replication here
        replica = Redis(port=port)
        key = f"{ha_settings.key_prefix}:token:{reply.token.id}"
        assert await replica.exists(key), f"the replica on {port} lacks the change"
        await replica.aclose()


async def test_a_reply_says_so_when_a_replica_does_not_confirm_in_time(
    admin: TokenClient, cluster: HaCluster
) -> None:
    stalled = cluster.server_on(_replicas(cluster)[0])
    stalled.pause()
    try:
        started = time.monotonic()
        reply = await admin.generate("half-replicated", [SCOPE], command_id="half-1")
        waited = time.monotonic() - started
    finally:
        stalled.resume()
    assert reply.ok
    assert reply.durability == Durability(wanted=2, confirmed=1)
    assert not reply.durability.met
    assert waited >= 0.3, "the reply did not wait for the replicas"
    # The same command again is safe: a duplicate, confirmed by both replicas this time.
    again = await admin.generate("half-replicated", [SCOPE], command_id="half-1")
    assert again.duplicate
    assert again.durability == Durability(wanted=2, confirmed=2)


async def test_a_replica_reading_gateway_refuses_a_revoked_token_at_once(
    admin: TokenClient, ha_settings: ServiceSettings, cluster: HaCluster
) -> None:
    reads = replica_redis_client(ha_settings)
    verifier = Verifier(reads, key_prefix=ha_settings.key_prefix, cache=CacheOptions())
    try:
        assert await verifier.start(timeout_s=5), "no tracking on the replica"
        generated = await admin.generate("to-revoke", [SCOPE])
        assert generated.secret is not None
        assert generated.token is not None
        assert (await verifier.verify(generated.secret, SCOPE)).ok
        assert (await verifier.verify(generated.secret, SCOPE)).ok  # now from the cache
        pinned = reads.connection_pool.pinned  # type: ignore[attr-defined]
        assert pinned is not None
        assert pinned[1] in _replicas(cluster), "the gateway reads from the primary"
        revoked = await admin.revoke(generated.token.id)
        replied = time.monotonic()
        assert revoked.ok
        verdict = await verifier.verify(generated.secret, SCOPE)
        reach_ms = (time.monotonic() - replied) * 1000
        assert not verdict.ok, "the replica's cache still accepted a revoked token"
        print(f"revocation reach to a replica-reading gateway: {reach_ms:.2f} ms")
    finally:
        await verifier.close()
        await reads.aclose()


async def test_a_replica_reading_gateway_answers_while_the_primary_is_frozen(
    admin: TokenClient, ha_settings: ServiceSettings, cluster: HaCluster
) -> None:
    generated = await admin.generate("while-frozen", [SCOPE])
    assert generated.secret is not None
    reads = replica_redis_client(ha_settings, socket_timeout=0.3)
    verifier = Verifier(reads, key_prefix=ha_settings.key_prefix, timeout_s=0.3)  # no cache
    frozen = cluster.server_on(cluster.primary_port() or 0)
    frozen.pause()  # shorter than down-after: no failover, the primary just does not answer
    try:
        verdicts = [await verifier.verify(generated.secret, SCOPE) for _ in range(20)]
    finally:
        frozen.resume()
        await reads.aclose()
    assert all(verdict.ok for verdict in verdicts)


def test_tokenctl_reaches_the_primary_through_sentinel(
    cluster: HaCluster, ha_settings: ServiceSettings
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "TOKENS_"))},
        "REDIS_SENTINELS": cluster.sentinels,
        "TOKENS_KEY_PREFIX": ha_settings.key_prefix,
    }
    done = subprocess.run(
        [sys.executable, "-c", "from tokenctl.cli import main; main()", "admins", "add", "bob"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    members = asyncio.run(_admins(ha_settings))
    assert "bob" in members


async def _admins(access: RedisAccess) -> set[str]:
    client = redis_client(access, decode_responses=True)
    try:
        prefix = getattr(access, "key_prefix", "tokens")
        members = await client.smembers(f"{prefix}:admins")
        return {str(member) for member in members}
    finally:
        await client.aclose()


async def test_a_client_follows_the_primary_when_it_dies_and_comes_back_as_a_replica() -> None:
    # Its own cluster: the module's keeps its primary. redis-py 8.1 alone reconnects a
    # dropped connection at its last address; here that is the old primary, back as a
    # replica (READONLY), and writes would fail until the retries run out.
    own = HaCluster.start(down_after_ms=1000)
    client = redis_client(RedisAccess(redis_sentinels=own.sentinels.split(",")))
    try:
        await client.set("before", "1")
        old = own.primary_port()
        assert old is not None
        dead = own.server_on(old)
        dead.kill()
        killed = time.monotonic()

        # Sent while there is no primary: it is retried through the whole failover.
        async def write_during() -> None:
            await client.set("during", "1")

        during = asyncio.create_task(write_during())
        while (new := own.primary_port()) in (old, None):
            assert time.monotonic() - killed < 30, "no failover"
            await asyncio.sleep(0.05)
        dead.extra_args = (*dead.extra_args, "--replicaof", "127.0.0.1", str(new))
        dead.launch()
        await asyncio.wait_for(during, 10)
        assert time.monotonic() - killed < 10
        await client.set("after", "1")
        assert await client.get("before") == b"1"
        replica = Redis(port=old)
        assert (await replica.role())[0] in (b"slave", "slave")
        await replica.aclose()
    finally:
        await client.aclose()
        own.stop()
