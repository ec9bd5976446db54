"""Clients that find Redis through Sentinel, and follow it when it fails over.

With ``REDIS_SENTINELS`` set, no process connects to a fixed address: each new
connection asks the sentinels where the primary is now (redis-py's
``SentinelConnectionPool``), and a connection to a primary that died or was demoted
fails, is dropped, and is made again to the new one. Nothing needs a restart.

Gateways may read from a replica instead (:func:`replica_client`). All the connections of
such a client, the verdict cache's tracking connection included, go to one replica, the
same one for as long as it answers: an invalidation heard from one replica says nothing
of what another, further behind, would still answer to a read. When that replica is gone
the next connection goes to another one (or to the primary when no replica is left),
and the tracking connection, lost with it, empties the cache until it is back.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
    SlaveNotFoundError,
)
from redis.backoff import ExponentialBackoff

__all__ = [
    "FAILOVER_RETRY_S",
    "PrimaryConnection",
    "PrimarySSLConnection",
    "ReplicaPool",
    "failover_retry",
    "primary_client",
    "primary_connection_class",
    "replica_client",
]

Address = tuple[str, int]

FAILOVER_RETRY_S = 15.0
"""How long a command keeps trying to reach a primary before its error is raised."""
_PAUSE_S = 0.25


def failover_retry() -> Retry:
    """Retry a command that lost its connection for up to :data:`FAILOVER_RETRY_S`.

    A failover takes a few seconds (down-after-milliseconds, the vote, the promotion);
    meanwhile a connection to the dead primary fails and the sentinels name no primary
    (``MasterNotFoundError``, a ``ConnectionError``). Retried every quarter second, the
    command goes through as soon as the new primary answers, rather than failing to its
    caller: FastStream's subscribers, in particular, pause 5 s after a failed read.
    Only commands safe to send twice may rely on it; every write of the service is (the
    command id makes a repeat answer ``duplicate``).
    """
    return Retry(ExponentialBackoff(cap=_PAUSE_S, base=0.05), int(FAILOVER_RETRY_S / _PAUSE_S))


class PrimaryConnection(SentinelManagedConnection):
    """A connection to the primary that asks the sentinels again whenever it reconnects.

    redis-py 8.1 reconnects a dropped connection in ``send_packed_command`` through
    ``connect_check_health``, at the address it last had, not through ``connect`` (which
    asks the sentinels): a connection to a primary that died is made again, retry after
    retry, to the dead address, and once that server is back as a replica, to the
    replica (``READONLY``). Here, every (re)connection asks where the primary is now.
    """

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        """Connect to the primary the sentinels name now (redis-py's check follows)."""
        pool: Any = self.connection_pool
        if not self.is_connected and pool.is_master:
            self.host, self.port = await pool.get_master_address()
        await super().connect_check_health(
            check_health=check_health, retry_socket_connect=retry_socket_connect
        )


class PrimarySSLConnection(PrimaryConnection, SentinelManagedSSLConnection):
    """:class:`PrimaryConnection` over TLS."""


def primary_connection_class(tls: bool) -> type[PrimaryConnection]:
    """The connection class of clients (and brokers) of the primary."""
    return PrimarySSLConnection if tls else PrimaryConnection


class _PinningConnection(SentinelManagedConnection):
    async def connect_to(self, address: Any) -> None:
        await super().connect_to(address)  # type: ignore[no-untyped-call]
        pool: Any = self.connection_pool
        pool.pinned = (address[0], int(address[1]))


class _PinningSSLConnection(_PinningConnection, SentinelManagedSSLConnection):
    pass


class ReplicaPool(SentinelConnectionPool):
    """A pool whose connections all go to one replica while it answers (then the next)."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        ssl = kwargs.pop("ssl", False)
        kwargs["connection_class"] = _PinningSSLConnection if ssl else _PinningConnection
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self.pinned: Address | None = None
        """The replica the last connection was made to; the next one tries it first."""

    async def rotate_slaves(self) -> AsyncIterator[Any]:
        """The pinned replica first, then the others (shuffled), then the primary."""
        found = await self.sentinel_manager.discover_slaves(self.service_name)
        replicas = [(str(host), int(port)) for host, port in found]
        random.shuffle(replicas)
        replicas.sort(key=lambda address: address != self.pinned)
        for address in replicas:
            yield address
        with contextlib.suppress(MasterNotFoundError):
            # no replica answers: reading from the primary beats answering nothing
            yield await self.get_master_address()  # type: ignore[no-untyped-call]
        raise SlaveNotFoundError(f"no replica of {self.service_name!r} answers")


def _sentinel(
    sentinels: list[Address], sentinel_options: dict[str, Any], options: dict[str, Any]
) -> Sentinel:
    return Sentinel(  # type: ignore[no-untyped-call]
        sentinels, sentinel_kwargs=sentinel_options, **options
    )


def primary_client(
    sentinels: list[Address],
    master: str,
    sentinel_options: dict[str, Any],
    options: dict[str, Any],
) -> Redis:
    """A client of whichever server is the primary now."""
    tls = bool(options.pop("ssl", False))
    manager = _sentinel(sentinels, sentinel_options, options)
    client: Redis = manager.master_for(
        master, redis_class=Redis, connection_class=primary_connection_class(tls)
    )
    return client


def replica_client(
    sentinels: list[Address],
    master: str,
    sentinel_options: dict[str, Any],
    options: dict[str, Any],
) -> Redis:
    """A read-only client of one replica of ``master``, as :class:`ReplicaPool` picks it."""
    manager = _sentinel(sentinels, sentinel_options, options)
    client: Redis = manager.slave_for(master, redis_class=Redis, connection_pool_class=ReplicaPool)
    return client
