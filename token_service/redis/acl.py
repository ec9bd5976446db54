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
- ``publisher-console`` (the web console) also reads token records, daily counts, audit
  trails, the list of ids, ``tokens:events`` (XREAD: the live feed) and membership of
  ``tokens:admins``, and keeps sessions under ``tokens:console:*``; no secret hash keys
  (a record holds its current secret's sha256, which gives no way back to the token).
- ``token-service`` and ``audit-worker`` may BGREWRITEAOF (and INFO, to see whether the
  append-only file is on): a publisher may paste a token into a command, a gateway into
  a usage report, and deleting the entry (XDEL, each on the stream it reads) does not
  take it out of the file on disk until Redis rewrites it. Both may HEXISTS the issued
  buckets and EXISTS the secret keys, read-only, to tell whether a token was really
  issued: only then is the rewrite worth it.
- ``token-service`` may SCAN (key names only; ACL patterns do not restrict it) and keeps
  its rights on layout 1's name, digest and index keys: at start-up it moves a Redis of
  that layout to the current one (``token_service.redis.migration``).
- ``gateway`` may CLIENT TRACKING, for the ``Verifier``'s verdict cache. Redis 7.0 does
  not hold a broadcast prefix to the user's key patterns: a gateway could track any
  prefix and so learn the *names* (never the values) of keys written under it, such as
  token ids, token names and command ids. Later Redis versions filter the names by the
  ACL (redis/redis#15371).
- ``notifier`` reads ``tokens:events`` with its own group (``notify``) and writes only
  its delivery records (``tokens:notify:deliveries``), its markers and attempt counts
  (``tokens:notify:delivered:*``, ``tokens:notify:attempts:*``) and dead letters.
- ``publisher`` may SUBSCRIBE only to ``tokens:replies:*`` and not PSUBSCRIBE: a reply
  carries a new secret, and a pattern subscription would hear every publisher's.
- ``token-service`` may WAIT (after a PUBLISH nobody hears), so that an ``ok`` reply goes
  out only once replicas have the change.
- ``replica`` only replicates (PSYNC, REPLCONF); ``sentinel`` has what Redis Sentinel
  needs, CONFIG REWRITE among it but no other CONFIG: they exist for the ``ha`` profile.
- Passwords here are the development ones, ``dev-<user>``, stored as SHA-256 hashes.
  Replace them in production (see the README, "Least privilege").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from token_service.keys import Keys
from token_service.redis.acl_infra import replica_user, sentinel_user
from token_service.redis.acl_users import (
    CONSOLE,
    FORBIDDEN,
    Grant,
    RedisUser,
    gateway_user,
    notifier_user,
    operator_user,
    publisher_user,
    service_user,
    shared_publisher_user,
    worker_user,
)

__all__ = [
    "FORBIDDEN",
    "Grant",
    "RedisUser",
    "dev_password",
    "password_hash",
    "render",
    "users",
]

_SAFE_PREFIX = re.compile(r"[A-Za-z0-9_.:-]+")
DEFAULT_PUBLISHERS = (CONSOLE,)
"""The publishers the committed ACL file has users for (``TOKENS_PUBLISHERS`` in compose)."""


def users(
    prefix: str = "tokens", publishers: Sequence[str] = DEFAULT_PUBLISHERS
) -> list[RedisUser]:
    """Every user of the system, for keys under ``prefix``, with one user per publisher."""
    if not _SAFE_PREFIX.fullmatch(prefix):
        raise ValueError(f"key prefix {prefix!r} would need escaping in an ACL key pattern")
    keys = Keys(prefix)
    return [
        service_user(keys),
        worker_user(keys),
        notifier_user(keys),
        gateway_user(keys),
        shared_publisher_user(keys),
        *(publisher_user(keys, name) for name in publishers),
        operator_user(keys),
        RedisUser("healthcheck", "container health checks (`redis-cli ping`)", (Grant(("ping",)),)),
        replica_user(),
        sentinel_user(),
    ]


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
