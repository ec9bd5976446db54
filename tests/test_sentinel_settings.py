"""Sentinel settings: every process reads them alike, and every client it builds uses them.

No server is needed: building a client connects to nothing.
"""

from __future__ import annotations

import pytest
from faststream.redis import RedisSentinelBroker
from pydantic import SecretStr, ValidationError
from redis.asyncio.sentinel import SentinelConnectionPool

from authz.settings import AuthzSettings
from console.settings import ConsoleSettings
from token_service.redis.connection import (
    RedisAccess,
    redis_client,
    replica_redis_client,
    sync_redis_client,
)
from token_service.redis.sentinel import ReplicaPool
from token_service.redis.subscription import redis_broker
from token_service.settings import ServiceSettings
from tokenctl.settings import CliSettings
from workers.settings import AuditSettings

_EVERY_PROCESS = [
    RedisAccess,
    ServiceSettings,
    AuditSettings,
    CliSettings,
    ConsoleSettings,
    AuthzSettings,
]


@pytest.mark.parametrize("settings_class", _EVERY_PROCESS)
def test_every_process_reads_the_sentinel_settings(
    monkeypatch: pytest.MonkeyPatch, settings_class: type[RedisAccess]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.1:26379, 10.0.0.2:26380 ,[::1]:26381")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "tokens-primary")
    monkeypatch.setenv("REDIS_SENTINEL_USERNAME", "sentinel-user")
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", "sentinel-secret")
    settings = settings_class()
    assert settings.uses_sentinel
    assert settings.configured
    assert settings.sentinel_addresses() == [
        ("10.0.0.1", 26379),
        ("10.0.0.2", 26380),
        ("::1", 26381),
    ]
    assert settings.redis_sentinel_master == "tokens-primary"
    assert settings.redis_sentinel_password == SecretStr("sentinel-secret")
    assert "sentinel-secret" not in repr(settings)
    options = settings.sentinel_options()
    assert options["username"] == "sentinel-user"
    assert options["password"] == "sentinel-secret"


def test_a_sentinel_address_without_a_port_is_refused() -> None:
    with pytest.raises(ValidationError, match="host:port"):
        RedisAccess(redis_sentinels=["10.0.0.1"])


def test_without_url_or_sentinels_nothing_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_SENTINELS", raising=False)
    access = RedisAccess(redis_url="")  # what a parent passes on when it had no URL
    assert not access.configured
    with pytest.raises(ValueError, match="REDIS_SENTINELS"):
        access.required_url()


async def test_clients_ask_the_sentinels_for_the_primary() -> None:
    access = RedisAccess(
        redis_url="redis://ignored-host:1/3",
        redis_sentinels=["127.0.0.1:26379"],
        redis_username="token-service",
        redis_password=SecretStr("pw"),
    )
    client = redis_client(access)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.is_master
    assert pool.service_name == "mymaster"
    # The URL's database and the user hold; its host does not.
    assert pool.connection_kwargs["db"] == 3
    assert pool.connection_kwargs["username"] == "token-service"
    assert "host" not in pool.connection_kwargs
    replica = replica_redis_client(access)
    assert isinstance(replica.connection_pool, ReplicaPool)
    assert not replica.connection_pool.is_master
    sync = sync_redis_client(access)
    assert sync.connection_pool.connection_kwargs["db"] == 3
    assert type(sync.connection_pool).__name__ == "SentinelConnectionPool"
    for each in (client, replica):
        await each.aclose()
    sync.close()


def test_the_broker_follows_the_sentinels() -> None:
    access = RedisAccess(redis_sentinels=["127.0.0.1:26379"], redis_sentinel_master="m")
    assert isinstance(redis_broker(access), RedisSentinelBroker)
    assert not isinstance(redis_broker(RedisAccess(redis_url="redis://h:1/0")), RedisSentinelBroker)


def test_replicas_are_awaited_by_default_only_through_sentinel() -> None:
    plain = ServiceSettings(redis_url="redis://h:1/0")
    assert plain.replicas_to_wait_for == 0
    through = ServiceSettings(redis_sentinels=["127.0.0.1:26379"])
    assert through.replicas_to_wait_for == 1
    told = ServiceSettings(redis_sentinels=["127.0.0.1:26379"], wait_replicas=2)
    assert told.replicas_to_wait_for == 2


def test_without_sentinels_a_replica_client_is_the_primary_client() -> None:
    access = RedisAccess(redis_url="redis://127.0.0.1:1/0")
    client = replica_redis_client(access)
    assert not isinstance(client.connection_pool, SentinelConnectionPool)
