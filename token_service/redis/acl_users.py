"""Each component's Redis user: the commands it sends, on the keys and channels it uses.

Why each user may do what it may is written in :mod:`token_service.redis.acl`; this
module builds the users from the key layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from token_service.keys import Keys
from token_service.publishers import parse_publisher

CONSOLE = "console"
"""The web console's publisher: its user also gets the console's reads."""

__all__ = [
    "CONSOLE",
    "FORBIDDEN",
    "Grant",
    "RedisUser",
    "gateway_user",
    "notifier_user",
    "operator_user",
    "publisher_user",
    "service_user",
    "shared_publisher_user",
    "worker_user",
]

FORBIDDEN = ("flushall", "flushdb", "config", "keys", "debug", "shutdown", "acl")
"""Commands no user of ours is given, in any form."""

_GROUP_READER = (
    "xreadgroup",
    "xack",
    "xautoclaim",
    "xpending",
    "xgroup|create",
    "xinfo|groups",
)
"""What a batch consumer with a claimer, a readiness probe and group metrics sends."""
_TRANSACTIONS = ("multi", "exec", "discard")


@dataclass(frozen=True, slots=True)
class Grant:
    """Commands a user may run on some keys and channels."""

    commands: tuple[str, ...]
    keys: tuple[str, ...] = ()
    """Key patterns: ``~`` read and write, ``%R~`` read only, ``%W~`` write only."""
    channels: tuple[str, ...] = ()

    def rule(self) -> str:
        """The grant in ACL syntax, without the selector's parentheses."""
        return " ".join([*(f"+{command}" for command in self.commands), *self.keys, *self.channels])


@dataclass(frozen=True, slots=True)
class RedisUser:
    """One Redis user: who uses it, and what it may do."""

    name: str
    used_by: str
    grants: tuple[Grant, ...]
    """The root permissions first; each further grant is a selector."""

    def line(self, password_sha256: str) -> str:
        """The user's line in an ACL file."""
        root, *selectors = self.grants
        parts = [f"user {self.name} on #{password_sha256} resetkeys resetchannels -@all"]
        parts.append(root.rule())
        parts += [f"({selector.rule()})" for selector in selectors]
        return " ".join(parts)


def publisher_user(keys: Keys, name: str) -> RedisUser:
    # Version 2: its own stream, and its own reply channels only (no pattern subscriptions,
    # which would hear other publishers' replies and the secrets in them).
    parse_publisher(name)
    return RedisUser(
        f"publisher-{name}",
        f"publisher `{name}`: writes `{keys.publisher_commands(name)}`, hears its own replies",
        (
            Grant(("ping", "subscribe", "unsubscribe"), (), (f"&{keys.replies(name)}*",)),
            Grant(("xadd",), (f"~{keys.publisher_commands(name)}",)),
            *(_console_reads(keys) if name == CONSOLE else ()),
        ),
    )


def _console_reads(keys: Keys) -> tuple[Grant, ...]:
    # Each read only on its keys (`:daily` is under `token:*`); writes only its sessions.
    p = keys.prefix
    return (
        Grant(("hgetall",), (f"%R~{p}:token:*",)),
        Grant(("lrange",), (f"%R~{p}:token:*:audit",)),
        Grant(("lrange",), (f"%R~{keys.ids}",)),  # newest first, from the end
        Grant(("xrevrange", "xread"), (f"%R~{keys.events}",)),
        Grant(("sismember",), (f"%R~{keys.admins}",)),  # checked on every request
        Grant(("get", "set", "getdel", "del", "pexpire"), (f"~{keys.console_prefix}*",)),
    )


_TRIMMER = ("exists", "xinfo|groups", "xpending", "xrevrange", "xtrim")
"""What stream retention sends (token_service.redis.retention)."""


def service_user(keys: Keys) -> RedisUser:
    p = keys.prefix
    commands = (
        "ping",
        *_GROUP_READER,
        "xadd",
        "xdel",
        # It alone loads code into Redis: the library of functions, at start-up.
        *("fcall", "function|load"),
        *_TRANSACTIONS,
        "publish",
        # replicated before an ok reply: a PUBLISH nobody hears, then WAIT (store.replicate)
        "wait",
        # scrub.py: after deleting an entry that held a pasted token, it has Redis rewrite
        # the append-only file, so the token leaves the disk too (INFO tells whether the
        # AOF is on at all)
        *("bgrewriteaof", "info"),
        # what its functions and reads call
        *("get", "set", "del", "exists", "sismember"),
        *("hget", "hmget", "hgetall", "hset", "hdel", "hexists", "pexpireat"),
        *("zadd", "zrange", "zrangebyscore", "zrem", "zremrangebyscore"),
        *("rpush", "lpush", "lrange"),
        # migration.py: at start-up, it finds the keys of layout 1 left to move
        "scan",
    )
    owned = (
        f"~{keys.commands}",
        f"~{keys.commands}:*",
        f"~{keys.events}",
        f"~{keys.dead_letter}",
        f"~{keys.secret_prefix}*",
        f"~{p}:token:*",
        f"~{keys.names_prefix}*",
        f"~{keys.issued_prefix}*",
        f"~{keys.ids}",
        f"~{keys.expiries}",
        f"~{keys.layout}",
        # layout 1's keys, which migration.py moves to layout 2 at start-up
        f"~{p}:name:*",
        f"~{p}:digest:*",
        f"~{p}:index",
        f"~{p}:command:*",
        # SISMEMBER only: the functions take its name as an argument, not in KEYS, which
        # Redis checks for writing as well as reading.
        f"%R~{keys.admins}",
    )
    return RedisUser(
        "token-service",
        "the command handler (`python -m token_service`)",
        (
            Grant((*commands, "xtrim", "xrevrange"), owned, (f"&{keys.replies_prefix}*",)),
            # retention: it trims the usage stream below what the audit worker acknowledged
            Grant(_TRIMMER, (f"~{keys.usage}",)),
        ),
    )


def worker_user(keys: Keys) -> RedisUser:
    p = keys.prefix
    # The folds run as library functions it may call but not load; every command they send
    # is checked against the grants below, each command only on the keys it needs there.
    # BGREWRITEAOF and INFO (no keys): after deleting a usage entry that held a token.
    streams = Grant(
        ("ping", *_GROUP_READER, *_TRANSACTIONS, "fcall", "bgrewriteaof", "info"),
        (f"~{keys.usage}", f"~{keys.events}"),
    )
    return RedisUser(
        "audit-worker",
        "the audit worker (`python -m workers.audit`)",
        (
            streams,
            Grant(("xadd",), (f"~{keys.dead_letter}",)),
            # a usage entry holding a token is deleted; was the token really issued?
            Grant(("xdel",), (f"~{keys.usage}",)),
            Grant(("exists",), (f"%R~{keys.secret_prefix}*",)),
            Grant(("hexists",), (f"%R~{keys.issued_prefix}*",)),
            # last_used_ms in the token record (it also checks the token exists)
            Grant(("exists", "hget", "hset"), (f"~{p}:token:*",)),
            Grant(("hincrby",), (f"~{p}:token:*:daily",)),
            Grant(("rpush",), (f"~{p}:token:*:audit",)),
            Grant(("rpush", "ltrim"), (f"~{p}:token:*:refusals",)),
            # event ids already folded, by the hour
            Grant(("sadd", "sismember", "pexpire"), (f"~{p}:seen:*",)),
            # per reporter: the highest sequence folded and a ring of bits (sequenced reports)
            Grant(
                ("get", "set", "del", "pexpire", "getbit", "setbit", "setrange"),
                (f"~{p}:reporter:*",),
            ),
        ),
    )


def notifier_user(keys: Keys) -> RedisUser:
    # It reads the events stream with its own group and writes nothing there; its other
    # writes are its delivery records and markers, and dead letters for given-up notices.
    return RedisUser(
        "notifier",
        "the notifier (`python -m workers.notify`): notices to webhooks",
        (
            # XCLAIM: to keep the events it retries from looking abandoned to another
            Grant(("ping", *_GROUP_READER, "xclaim", *_TRANSACTIONS), (f"~{keys.events}",)),
            Grant(("xadd",), (f"~{keys.dead_letter}", f"~{keys.notify_deliveries}")),
            Grant(
                ("exists", "get", "set", "incrby", "pexpire", "del"),
                (f"~{keys.notify_prefix}delivered:*", f"~{keys.notify_prefix}attempts:*"),
            ),
        ),
    )


def gateway_user(keys: Keys) -> RedisUser:
    return RedisUser(
        "gateway",
        "gateways: `Verifier` and `UsageReporter`",
        (
            # Plain reads only, pipelined: a user who may run scripts may also run one
            # that never ends, and Redis answers nobody else until it does. PTTL and
            # CLIENT TRACKING are the verdict cache's (a key's end, and Redis' word on
            # every change): invalidations come as RESP3 pushes on the tracking
            # connection itself, so neither CLIENT ID nor SUBSCRIBE is needed.
            Grant(
                ("ping", "hgetall", "hmget", "pttl", "client|tracking", *_TRANSACTIONS),
                (f"%R~{keys.secret_prefix}*",),
            ),
            Grant(("xadd",), (f"~{keys.usage}",)),
        ),
    )


def shared_publisher_user(keys: Keys) -> RedisUser:
    return RedisUser(
        "publisher",
        "admin-side services sending commands with `TokenClient`",
        (
            Grant(("ping", "subscribe", "unsubscribe"), (), (f"&{keys.prefix}:replies:*",)),
            Grant(("xadd",), (f"~{keys.commands}",)),
        ),
    )


def operator_user(keys: Keys) -> RedisUser:
    p = keys.prefix
    reads = (
        "ping",
        "subscribe",
        "unsubscribe",
        *("get", "hget", "hgetall", "hmget", "lrange", "xrevrange"),
        # To stop a runaway script or function, should one ever block Redis; it may run
        # none itself (`tokenctl verify` checks a token the way a gateway does, by HMGET).
        *("script|kill", "function|kill"),
    )
    readable = (
        f"%R~{p}:token:*",
        f"%R~{keys.ids}",
        f"%R~{keys.events}",
        f"%R~{keys.issued_prefix}*",
        f"%R~{keys.secret_prefix}*",
    )
    return RedisUser(
        "operator",
        "people, through `tokenctl`: list, show, audit, send commands, manage admins",
        (
            Grant(reads, readable, (f"&{p}:replies:*",)),
            Grant(("xadd",), (f"~{keys.commands}",)),
            Grant(("smembers", "sismember", "sadd", "srem"), (f"~{keys.admins}",)),
        ),
    )
