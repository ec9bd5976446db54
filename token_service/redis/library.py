"""The Redis Functions library that holds every atomic step of the service and the worker.

Redis runs this code only when a user calls one of its functions (FCALL); loading code
is another right (FUNCTION LOAD), which only the token service's Redis user holds. A user
who may load code may load a loop that never ends, and once such code has written, Redis
cannot kill it: every client hears BUSY until Redis is restarted. So the library is built
here, loaded by the token service at start-up (``FUNCTION LOAD REPLACE``: loading the same
code again changes nothing), and the audit worker only calls it.

Each function is written in ``lua/<file>.lua`` as a body that reads ``KEYS`` and ``ARGV``,
with the key layout at its top; the library wraps each body in a Lua function whose two
parameters carry those names. Command functions start with ``lua/_guard.lua``, and those
that derive keys of the token layout with ``lua/_layout.lua``. Commands
a function sends are checked against the caller's ACL, as are the keys it is given.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

__all__ = [
    "LIBRARY",
    "VERSION_FUNCTION",
    "call",
    "is_missing",
    "library_source",
    "library_version",
    "load_library",
    "loaded_version",
    "wait_for_library",
]

LIBRARY = "token_service"
"""The library's name in Redis (``FUNCTION LIST``)."""
VERSION_FUNCTION = "tokens_library_version"
"""A read-only function answering the loaded library's version: is it there at all?"""

_BODIES: dict[str, tuple[str, ...]] = {
    "tokens_generate": ("_layout", "_guard", "generate"),
    "tokens_revoke": ("_layout", "_guard", "revoke"),
    "tokens_rotate": ("_layout", "_guard", "rotate"),
    "tokens_update": ("_layout", "_guard", "update"),
    "tokens_reject": ("reject",),
    "tokens_expire": ("_layout", "expire"),
    "tokens_migrate_tokens": ("_layout", "migrate_tokens"),
    "tokens_migrate_issued": ("_layout", "migrate_issued"),
    "audit_fold_usage": ("fold_usage",),
    "audit_fold_events": ("fold_events",),
}
"""Each function, and the files its body is made of, in order."""


def _read(name: str) -> str:
    return resources.files("token_service.redis").joinpath("lua", f"{name}.lua").read_text("utf-8")


@functools.cache
def _built() -> tuple[str, str]:
    parts = []
    for function, files in _BODIES.items():
        body = "\n".join(_read(name) for name in files)
        parts.append(f"local function {function}(KEYS, ARGV)\n{body}\nend\n")
        parts.append(f"redis.register_function('{function}', {function})\n")
    code = "".join(parts)
    version = hashlib.sha256(code.encode()).hexdigest()[:16]
    source = (
        f"#!lua name={LIBRARY}\n{code}"
        f"redis.register_function{{function_name='{VERSION_FUNCTION}',"
        f" callback=function() return '{version}' end, flags={{'no-writes'}}}}\n"
    )
    return source, version


def library_source() -> str:
    """The library as ``FUNCTION LOAD`` takes it."""
    return _built()[0]


def library_version() -> str:
    """A digest of this build's code: equal versions run the same code."""
    return _built()[1]


def is_missing(error: object) -> bool:
    """Whether Redis refused a call because the library is not loaded (any more)."""
    return isinstance(error, ResponseError) and "Function not found" in str(error)


async def load_library(redis: Redis) -> None:
    """Load the library, replacing an older one; only the token service's user may."""
    await redis.function_load(library_source(), replace=True)


async def loaded_version(redis: Redis) -> str | None:
    """The version Redis has loaded, or ``None`` when the library is not there."""
    try:
        version = await redis.fcall(VERSION_FUNCTION, 0)
    except ResponseError as exc:
        if is_missing(exc):
            return None
        raise
    return version.decode() if isinstance(version, bytes) else str(version)


async def wait_for_library(redis: Redis, limit_s: float | None = None) -> bool:
    """Wait until the library is loaded (by the token service); False if ``limit_s`` passed."""
    loop = asyncio.get_running_loop()
    deadline = None if limit_s is None else loop.time() + limit_s
    delay = 0.05
    while await loaded_version(redis) is None:
        if deadline is not None and loop.time() >= deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
    return True


async def call(redis: Redis, function: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """FCALL ``function`` with ``keys`` and ``args``."""
    return await redis.fcall(function, len(keys), *keys, *args)
