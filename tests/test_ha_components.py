"""Every component follows a failover by itself: SIGKILL the primary, restart nothing.

One primary, two replicas, three sentinels. The token service and the audit worker run
as processes, the auth endpoint and the console's read path in this one, each given only
the sentinels' addresses and the master's name. Before and after the primary dies: a
token is generated, the auth endpoint accepts it, the audit worker folds its use; after,
a revocation reaches the auth endpoint and the console lists the token made since.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from authz.app import Endpoint
from bench.ha_cluster import MASTER, HaCluster
from console.app import Console, build_console
from console.settings import ConsoleSettings
from contracts import TokenStatus
from tests.authz import authz_settings, running_endpoint
from tests.processes import audit_worker_process, service_process
from token_service.client import TokenClient
from token_service.redis.connection import redis_client
from token_service.settings import ServiceSettings

pytestmark = pytest.mark.ha

ADMIN = "alice"
READ = {"X-Original-URI": "/api/entities/42", "X-Original-Method": "GET"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[HaCluster]:
    """A cluster of this module's own: its primary gets killed."""
    started = HaCluster.start(down_after_ms=1000)
    yield started
    started.stop()


@pytest.fixture
def ha_settings(cluster: HaCluster) -> ServiceSettings:
    """Sentinels and master name only: no address of a data server anywhere."""
    return ServiceSettings(
        redis_sentinels=cluster.sentinels.split(","),
        redis_sentinel_master=MASTER,
        http_port=None,
        key_prefix=f"t{uuid.uuid4().hex[:10]}",
        admins=[ADMIN],
        resources=["entities", "reports"],
        trust_shared_stream=True,
    )


@pytest.fixture
def processes(ha_settings: ServiceSettings, tmp_path: Path) -> Iterator[Path]:
    """``python -m token_service`` and ``python -m workers.audit``, through Sentinel."""
    assert ha_settings.redis_url is None  # the processes get REDIS_URL="" : unset
    env = {"REDIS_SENTINELS": ",".join(ha_settings.redis_sentinels)}
    env["REDIS_SENTINEL_MASTER"] = MASTER
    log = tmp_path / "processes.log"
    with (
        service_process(ha_settings, log, env=env) as service,
        audit_worker_process(ha_settings, log, env=env) as worker,
    ):
        yield log
        assert service.poll() is None, "the service exited"
        assert worker.poll() is None, "the audit worker exited"


@pytest.fixture
async def endpoint(ha_settings: ServiceSettings) -> AsyncIterator[Endpoint]:
    """The auth endpoint in this event loop, through Sentinel."""
    settings = authz_settings(ha_settings, http_port=None)
    assert settings.uses_sentinel
    assert settings.redis_url is None
    async with running_endpoint(settings) as running:
        yield running


@pytest.fixture
async def console(ha_settings: ServiceSettings) -> AsyncIterator[Console]:
    """The console's wiring (its token reader), through Sentinel."""
    settings = ConsoleSettings(**ha_settings.access_fields(), key_prefix=ha_settings.key_prefix)
    built = build_console(settings, "http://127.0.0.1")
    yield built
    await built.redis.aclose()


@pytest.fixture
async def admin(ha_settings: ServiceSettings, processes: Path) -> AsyncIterator[TokenClient]:
    """An administrator's TokenClient, through Sentinel."""
    redis = redis_client(ha_settings)
    async with TokenClient(
        redis, actor=ADMIN, key_prefix=ha_settings.key_prefix, timeout=15
    ) as client:
        yield client
    await redis.aclose()


async def _status(endpoint: Endpoint, secret: str) -> int:
    url = f"http://127.0.0.1:{endpoint.server.port}/check"
    headers = {**READ, "Authorization": f"Bearer {secret}"}
    timeout = aiohttp.ClientTimeout(total=5)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(url, headers=headers) as response,
    ):
        await response.read()
        return response.status


async def _until_status(endpoint: Endpoint, secret: str, wanted: int, limit_s: float) -> float:
    """Seconds until the endpoint answers ``wanted`` for ``secret``; fails after ``limit_s``."""
    started = time.monotonic()
    seen: list[int] = []
    while time.monotonic() - started < limit_s:
        seen.append(await _status(endpoint, secret))
        if seen[-1] == wanted:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    pytest.fail(f"no {wanted} within {limit_s}s; answers seen: {sorted(set(seen))}")


async def _token(admin: TokenClient, name: str) -> tuple[str, str]:
    reply = await admin.generate(name, ["entities:read"])
    assert reply.ok, reply
    assert reply.token is not None
    assert reply.secret is not None
    return reply.token.id, reply.secret


async def _until_folded(console: Console, token_id: str, limit_s: float) -> float:
    """Seconds until the audit worker has folded a use of ``token_id`` (last_used_at)."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        view = await console.reader.get(token_id)
        if view is not None and view.last_used_at is not None:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    pytest.fail(f"the audit worker folded no use of {token_id} within {limit_s}s")


async def _failover(cluster: HaCluster) -> tuple[int, int, float]:
    """SIGKILL the primary; wait for the sentinels to name another. Old, new, seconds."""
    old = cluster.primary_port()
    assert old is not None
    cluster.server_on(old).kill()
    killed = time.monotonic()
    while (new := await asyncio.to_thread(cluster.primary_port)) in (old, None):
        assert time.monotonic() - killed < 30, "no failover within 30 s"
        await asyncio.sleep(0.1)
    assert new is not None
    return old, new, time.monotonic() - killed


async def _until_listening(admin: TokenClient, port: int, limit_s: float) -> float:
    """Seconds until the client's reply channel is subscribed on the new primary.

    Pub/sub keeps nothing: a reply published before the client's connection has found
    the new primary is lost and its send times out (the client's documented contract; a
    retry with the same command id gets the duplicate reply). The client finds it by
    itself; this waits for it to have done so rather than race it.
    """
    started = time.monotonic()
    async with Redis(port=port) as primary:
        while not dict(await primary.pubsub_numsub(admin.channel)).get(admin.channel.encode()):
            assert time.monotonic() - started < limit_s, "the client never subscribed again"
            await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_every_component_follows_the_failover_without_a_restart(
    cluster: HaCluster,
    admin: TokenClient,
    endpoint: Endpoint,
    console: Console,
    processes: Path,
) -> None:
    first_id, first = await _token(admin, "before-failover")
    await _until_status(endpoint, first, 200, 5)
    folded_before = await _until_folded(console, first_id, 20)

    old, new, failover_s = await _failover(cluster)
    listening_s = await _until_listening(admin, new, 10)
    revoked = await admin.revoke(first_id)
    assert revoked.ok, revoked
    refused_s = await _until_status(endpoint, first, 401, 5)
    second_id, second = await _token(admin, "after-failover")
    accepted_s = await _until_status(endpoint, second, 200, 5)
    folded_after = await _until_folded(console, second_id, 20)
    listed = await console.reader.list_tokens(TokenStatus.ACTIVE, 0, 50, newest_first=True)
    assert [view.id for view in listed.tokens] == [second_id]
    everything = await console.reader.list_tokens(None, 0, 50, newest_first=True)
    assert {view.id for view in everything.tokens} == {first_id, second_id}
    print(
        f"primary {old} -> {new} in {failover_s:.1f}s, client listening"
        f" {listening_s:.2f}s later; folded {folded_before:.1f}s before;"
        f" after: refused {refused_s:.2f}s after the revoke reply, second accepted in"
        f" {accepted_s:.2f}s, folded in {folded_after:.1f}s"
    )
