"""The Redis users of Redis itself: replicas and sentinels (compose profile ``ha``).

They hold no key and no channel of the product's; :mod:`token_service.redis.acl`
renders them with the components' users.
"""

from __future__ import annotations

from token_service.redis.acl_users import Grant, RedisUser

__all__ = ["replica_user", "sentinel_user"]


def replica_user() -> RedisUser:
    """The user a replica replicates as."""
    # A replica logs in to its primary with `masteruser`/`masterauth` to replicate; it
    # needs the replication handshake and nothing else (no key, no channel).
    return RedisUser(
        "replica",
        "replicas, to replicate from the primary (`masteruser`, compose profile `ha`)",
        (Grant(("psync", "replconf", "ping")),),
    )


def sentinel_user() -> RedisUser:
    """The user Redis Sentinel watches and fails over as."""
    # What Redis' documentation lists for Sentinel: watch (PING, INFO, ROLE, the hello
    # channel), and fail over (REPLICAOF in a MULTI with CONFIG REWRITE, CLIENT KILL of
    # the old links). CONFIG REWRITE only: it may not read or set any other setting.
    commands = (
        *("ping", "info", "role", "publish", "subscribe"),
        *("multi", "exec", "slaveof", "replicaof", "config|rewrite"),
        *("client|setname", "client|kill", "script|kill"),
    )
    return RedisUser(
        "sentinel",
        "Redis Sentinel, watching and failing over the primary (compose profile `ha`)",
        (Grant(commands, (), ("&__sentinel__:hello",)),),
    )
