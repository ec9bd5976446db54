"""The token store: the Redis adapter behind the command handler and the read API.

Atomic logic lives in ``lua/*.lua`` beside this module; each command script starts
with ``_guard.lua`` (idempotency and the admin check). Scripts are loaded once and
called by SHA; a whole batch of commands goes to Redis in one pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TypeAlias, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from contracts import TokenView
from token_service.handlers import Mutation
from token_service.keys import Keys
from token_service.records import view_from_record

__all__ = [
    "Applied",
    "Failed",
    "Outcome",
    "Refused",
    "Repeated",
    "TokenStore",
]

_COMMAND_SCRIPTS = ("generate", "revoke", "rotate")


@dataclass(frozen=True, slots=True)
class Applied:
    """The command changed state; here is the token record after it."""

    record: dict[str, str]


@dataclass(frozen=True, slots=True)
class Refused:
    """The script refused the command; nothing changed."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Repeated:
    """The command was handled before; this is its first outcome."""

    outcome: dict[str, object]


@dataclass(frozen=True, slots=True)
class Failed:
    """Redis could not run the script; the command may be retried."""

    error: Exception


Outcome: TypeAlias = Applied | Refused | Repeated | Failed


def _read_lua(name: str) -> str:
    return resources.files("token_service").joinpath(f"lua/{name}.lua").read_text("utf-8")


def _outcome(reply: object) -> Outcome:
    if isinstance(reply, Exception):
        return Failed(reply)
    assert isinstance(reply, list)
    kind = reply[0]
    if kind == "ok":
        flat = reply[1]
        return Applied(dict(zip(flat[::2], flat[1::2], strict=True)))
    if kind == "duplicate":
        return Repeated(orjson.loads(reply[1]))
    if kind == "rejected":
        return Refused(reply[1], reply[2])
    return Applied({})  # 'recorded': a rejection was remembered


class TokenStore:
    """Token state in Redis, reached through a client that decodes replies to ``str``."""

    def __init__(self, redis: Redis, keys: Keys, command_ttl_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.command_ttl_ms = command_ttl_ms
        guard = _read_lua("_guard")
        self._sources = {name: guard + "\n" + _read_lua(name) for name in _COMMAND_SCRIPTS}
        self._sources["reject"] = _read_lua("reject")
        self._shas: dict[str, str] = {}

    async def load_scripts(self) -> None:
        """Load every script into Redis' script cache (again, after a Redis restart)."""
        for name, source in self._sources.items():
            self._shas[name] = await self.redis.script_load(source)

    async def ensure_group(self, stream: str, group: str) -> None:
        """Create a consumer group at id 0, so entries written before it are read too."""
        try:
            await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _run(
        self, calls: Sequence[tuple[str, list[str], Sequence[str | int]]]
    ) -> list[object]:
        if not self._shas:
            await self.load_scripts()
        for attempt in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for script, keys, args in calls:
                    pipe.evalsha(self._shas[script], len(keys), *keys, *args)
                replies: list[object] = await pipe.execute(raise_on_error=False)
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in replies):
                # Redis lost its script cache (a restart): nothing ran for those calls.
                await self.load_scripts()
                continue
            break
        return replies

    async def apply(self, mutations: Sequence[Mutation]) -> list[Outcome]:
        """Run each mutation's script; one round trip for the whole batch."""
        if not mutations:
            return []
        replies = await self._run([(m.script, m.keys, m.args) for m in mutations])
        return [_outcome(reply) for reply in replies]

    async def record_rejections(
        self, rejections: Sequence[tuple[str, bytes, bytes]]
    ) -> list[Outcome]:
        """Remember each ``(command_id, outcome, CommandRejected)`` once, with its event."""
        if not rejections:
            return []
        ttl = str(self.command_ttl_ms)
        calls = [
            ("reject", [self.keys.command(cid), self.keys.events], [o.decode(), e.decode(), ttl])
            for cid, o, e in rejections
        ]
        return [_outcome(reply) for reply in await self._run(calls)]

    async def get(self, token_id: str) -> TokenView | None:
        """One token as the contract's view, or ``None`` when no token has this id."""
        record = cast(dict[str, str], await self.redis.hgetall(self.keys.token(token_id)))
        return view_from_record(record) if record else None
