"""Redis users for least privilege: each component may run only the commands it sends,
on only the keys and channels it uses.

``python -m token_service.acl [--prefix tokens]`` prints the Redis ACL file rendered here;
``deploy/redis/users.acl`` is its output for the default prefix (a test keeps them
equal). Redis ACL files take no comments, so the reasons live here:

- Every user starts from ``resetkeys resetchannels -@all`` and gains explicit commands:
  none may run FLUSHALL, FLUSHDB, CONFIG, KEYS, DEBUG, SHUTDOWN or ACL. The ``default``
  user is off, so a client that does not log in can do nothing.
- A user is a list of :class:`Grant`: the first is its root permissions, each further
  one a Redis selector (``(...)``), so that, for example, the gateway may XADD to
  ``tokens:usage`` but only read ``tokens:secret:*``.
- Only ``token-service`` may bring code into Redis, and only as the library of functions
  (FUNCTION LOAD; no user may SCRIPT LOAD, EVAL or EVALSHA). A user who may load code may
  load a loop that never ends, and a script that wrote before looping cannot be killed:
  Redis would answer BUSY to everyone until restarted. ``audit-worker`` may FCALL, which
  runs the service's code only. ``operator`` may SCRIPT KILL and FUNCTION KILL.
- Commands a function sends are checked against the caller's permissions too, so the
  command lists include what the functions in ``lua/`` call; the keys given to FCALL are
  checked for reading and writing, so a key a user may only read is passed as an
  argument (``tokens:admins``, read-only for ``token-service``).
- Selectors tie each command to the keys it is sent to: the audit worker's data commands
  reach only the token and seen keys, never the streams it consumes.
- ``token-service`` trims every stream to its retention (XTRIM), never past what a
  consumer group still needs; on ``tokens:usage`` it may do nothing else.
- ``token-service`` may PUBLISH only under ``tokens:replies:``: it answers nowhere else
  (wire contract version 2), so a forged ``reply_to`` cannot reach another channel.
- Each registered publisher has a user ``publisher-<name>`` that may XADD only to its own
  stream ``tokens:commands:<name>`` and SUBSCRIBE only to ``tokens:replies:<name>:*``.
- ``token-service`` alone may BGREWRITEAOF (and INFO, to see whether the append-only
  file is on): a publisher may paste a token into a command, and deleting the entry
  does not take it out of the file on disk until Redis rewrites it.
- ``publisher`` may SUBSCRIBE only to ``tokens:replies:*`` and not PSUBSCRIBE: a reply
  carries a new secret, and a pattern subscription would hear every publisher's.
- Passwords here are the development ones, ``dev-<user>``, stored as SHA-256 hashes.
  Replace them in production (see the README, "Least privilege").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from token_service.keys import Keys
from token_service.publishers import parse_publisher

__all__ = [
    "FORBIDDEN",
    "Grant",
    "RedisUser",
    "dev_password",
    "password_hash",
    "render",
    "users",
]

FORBIDDEN = ("flushall", "flushdb", "config", "keys", "debug", "shutdown", "acl")
"""Commands no user of ours is given, in any form."""

_SAFE_PREFIX = re.compile(r"[A-Za-z0-9_.:-]+")
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


DEFAULT_PUBLISHERS = ("console",)
"""The publishers the committed ACL file has users for (``TOKENS_PUBLISHERS`` in compose)."""


def users(
    prefix: str = "tokens", publishers: Sequence[str] = DEFAULT_PUBLISHERS
) -> list[RedisUser]:
    """Every user of the system, for keys under ``prefix``, with one user per publisher."""
    if not _SAFE_PREFIX.fullmatch(prefix):
        raise ValueError(f"key prefix {prefix!r} would need escaping in an ACL key pattern")
    keys = Keys(prefix)
    return [
        _token_service(keys),
        _audit_worker(keys),
        _gateway(keys),
        _publisher(keys),
        *(_named_publisher(keys, name) for name in publishers),
        _operator(keys),
        RedisUser("healthcheck", "container health checks (`redis-cli ping`)", (Grant(("ping",)),)),
    ]


def _named_publisher(keys: Keys, name: str) -> RedisUser:
    # Version 2: its own stream, and its own reply channels only (no pattern subscriptions,
    # which would hear other publishers' replies and the secrets in them).
    parse_publisher(name)
    return RedisUser(
        f"publisher-{name}",
        f"publisher `{name}`: writes `{keys.publisher_commands(name)}`, hears its own replies",
        (
            Grant(("ping", "subscribe", "unsubscribe"), (), (f"&{keys.replies(name)}*",)),
            Grant(("xadd",), (f"~{keys.publisher_commands(name)}",)),
        ),
    )


_TRIMMER = ("exists", "xinfo|groups", "xpending", "xrevrange", "xtrim")
"""What stream retention sends (token_service.redis.retention)."""


def _token_service(keys: Keys) -> RedisUser:
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
        # scrub.py: after deleting an entry that held a pasted token, it has Redis rewrite
        # the append-only file, so the token leaves the disk too (INFO tells whether the
        # AOF is on at all)
        *("bgrewriteaof", "info"),
        # what its functions and reads call
        *("get", "set", "del", "exists", "sismember"),
        *("hget", "hmget", "hgetall", "hset", "pexpireat"),
        *("zadd", "zrange", "zrangebyscore", "zrem", "zremrangebyscore"),
    )
    owned = (
        f"~{keys.commands}",
        f"~{keys.commands}:*",
        f"~{keys.events}",
        f"~{keys.dead_letter}",
        f"~{keys.secret_prefix}*",
        f"~{p}:token:*",
        f"~{keys.name_prefix}*",
        f"~{p}:digest:*",
        f"~{keys.index}",
        f"~{keys.expiries}",
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


def _audit_worker(keys: Keys) -> RedisUser:
    p = keys.prefix
    # The folds run as library functions it may call but not load; every command they send
    # is checked against the grants below, each command only on the keys it needs there.
    streams = Grant(
        ("ping", *_GROUP_READER, *_TRANSACTIONS, "fcall"), (f"~{keys.usage}", f"~{keys.events}")
    )
    return RedisUser(
        "audit-worker",
        "the audit worker (`python -m workers.audit`)",
        (
            streams,
            Grant(("xadd",), (f"~{keys.dead_letter}",)),
            # last_used_ms in the token record (it also checks the token exists)
            Grant(("exists", "hget", "hset"), (f"~{p}:token:*",)),
            Grant(("hincrby",), (f"~{p}:token:*:daily",)),
            Grant(("rpush",), (f"~{p}:token:*:audit",)),
            # event ids already folded, by the hour
            Grant(("sadd", "sismember", "pexpire"), (f"~{p}:seen:*",)),
        ),
    )


def _gateway(keys: Keys) -> RedisUser:
    return RedisUser(
        "gateway",
        "gateways: `Verifier` and `UsageReporter`",
        (
            # Plain reads only, pipelined: a user who may run scripts may also run one
            # that never ends, and Redis answers nobody else until it does.
            Grant(("ping", "hgetall", "hmget", *_TRANSACTIONS), (f"%R~{keys.secret_prefix}*",)),
            Grant(("xadd",), (f"~{keys.usage}",)),
        ),
    )


def _publisher(keys: Keys) -> RedisUser:
    return RedisUser(
        "publisher",
        "admin-side services sending commands with `TokenClient`",
        (
            Grant(("ping", "subscribe", "unsubscribe"), (), (f"&{keys.prefix}:replies:*",)),
            Grant(("xadd",), (f"~{keys.commands}",)),
        ),
    )


def _operator(keys: Keys) -> RedisUser:
    p = keys.prefix
    reads = (
        "ping",
        "subscribe",
        "unsubscribe",
        *("get", "hgetall", "hmget", "zrange", "xrevrange"),
        # To stop a runaway script or function, should one ever block Redis; it may run
        # none itself (`tokenctl verify` checks a token the way a gateway does, by HMGET).
        *("script|kill", "function|kill"),
    )
    readable = (
        f"%R~{p}:token:*",
        f"%R~{keys.index}",
        f"%R~{keys.events}",
        f"%R~{p}:digest:*",
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


def dev_password(user: str) -> str:
    """The development password of ``user``; never use it in production."""
    return f"dev-{user}"


def password_hash(password: str) -> str:
    """How an ACL file stores a password: lowercase hex SHA-256."""
    return hashlib.sha256(password.encode()).hexdigest()


def render(
    prefix: str = "tokens",
    passwords: Mapping[str, str] | None = None,
    publishers: Sequence[str] = DEFAULT_PUBLISHERS,
) -> str:
    """The ACL file; ``passwords`` maps user names to passwords (default: the dev ones)."""
    passwords = passwords or {}
    lines = ["user default off resetkeys resetchannels -@all"]
    for user in users(prefix, publishers):
        password = passwords.get(user.name, dev_password(user.name))
        lines.append(user.line(password_hash(password)))
    return "\n".join(lines) + "\n"
