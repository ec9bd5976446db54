"""The token store: the Redis adapter behind the command handler and the read API.

Atomic logic lives in ``lua/*.lua`` beside this module, loaded into Redis as one
library of functions (``token_service.redis.library``); each command function starts with
``_guard.lua`` (idempotency and the admin check). A whole batch of commands goes to
Redis in one pipeline of FCALLs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from ulid import ULID

from contracts import TokenStatus, TokenView, format_timestamp, to_millis, utc_now
from token_service.commands.handlers import Mutation
from token_service.keys import Keys
from token_service.redis.library import is_missing, load_library
from token_service.redis.records import view_from_record

__all__ = [
    "Applied",
    "Failed",
    "Outcome",
    "Refused",
    "Repeated",
    "StaleReport",
    "TokenPage",
    "TokenStore",
]


@dataclass(frozen=True, slots=True)
class Applied:
    """The command changed state; here is the token record after it."""

    record: dict[str, str]


@dataclass(frozen=True, slots=True)
class Refused:
    """The function refused the command; nothing changed."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Repeated:
    """The command was handled before; this is its first outcome."""

    outcome: dict[str, object]


@dataclass(frozen=True, slots=True)
class Failed:
    """Redis could not run the function; the command may be retried."""

    error: Exception


Outcome: TypeAlias = Applied | Refused | Repeated | Failed


@dataclass(frozen=True, slots=True)
class TokenPage:
    """One page of a listing; pass ``next_cursor`` back for the next, ``None`` at the end."""

    tokens: list[TokenView]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class StaleReport:
    """Active tokens worth a look: to revoke, or to rotate before they lapse."""

    never_used: list[TokenView]
    unused: list[TokenView]
    expiring: list[TokenView]


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
    assert kind == "recorded"  # a rejection was remembered, with its event
    return Applied({})


class TokenStore:
    """Token state in Redis, reached through a client that decodes replies to ``str``."""

    def __init__(self, redis: Redis, keys: Keys, command_ttl_ms: int) -> None:
        self.redis = redis
        self.keys = keys
        self.command_ttl_ms = command_ttl_ms

    async def load_functions(self) -> None:
        """Load the functions library (again, should Redis have lost it)."""
        await load_library(self.redis)

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
        missing = ResponseError("Function not found")
        replies: list[object] = [missing] * len(calls)
        for attempt in range(2):
            # Only calls Redis did not run (the library lost in a restart or a flush) go
            # again: the others did run, and running them twice would answer "duplicate".
            todo = [i for i, reply in enumerate(replies) if is_missing(reply)]
            if not todo:
                break
            if attempt:
                await self.load_functions()
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    function, keys, args = calls[i]
                    pipe.fcall(f"tokens_{function}", len(keys), *keys, *args)
                for i, reply in zip(todo, await pipe.execute(raise_on_error=False), strict=True):
                    replies[i] = reply
        return replies

    async def apply(self, mutations: Sequence[Mutation]) -> list[Outcome]:
        """Run each mutation's function; one round trip for the whole batch."""
        if not mutations:
            return []
        replies = await self._run([(m.function, m.keys, m.args) for m in mutations])
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

    async def expire_due(self, now: datetime, limit: int = 100) -> int:
        """Mark up to ``limit`` tokens past their expiry as expired; how many were."""
        keys = [self.keys.expiries, self.keys.events]
        args: list[str | int] = [to_millis(now), format_timestamp(now), self.keys.prefix]
        args += [str(ULID.from_datetime(now)) for _ in range(limit)]
        (reply,) = await self._run([("expire", keys, args)])
        if isinstance(reply, Exception):
            raise reply
        return int(cast(int, reply))

    async def outcome_of(self, command_id: str) -> dict[str, object] | None:
        """The remembered first outcome of a command, if it was handled."""
        stored = await self.redis.get(self.keys.command(command_id))
        return None if stored is None else cast(dict[str, object], orjson.loads(stored))

    async def get(self, token_id: str) -> TokenView | None:
        """One token as the contract's view, or ``None`` when no token has this id."""
        record = cast(dict[str, str], await self.redis.hgetall(self.keys.token(token_id)))
        return view_from_record(record) if record else None

    async def list_tokens(
        self, status: TokenStatus | None = None, cursor: int = 0, limit: int = 50
    ) -> TokenPage:
        """Tokens in creation order, optionally of one status, ``limit`` at a time."""
        views: list[TokenView] = []
        position = cursor
        now_ms = to_millis(utc_now())
        while True:
            ids = cast(
                list[str],
                await self.redis.zrange(self.keys.index, position, position + 2 * limit),
            )
            if not ids:
                return TokenPage(views, None)
            async with self.redis.pipeline(transaction=False) as pipe:
                for token_id in ids:
                    pipe.hgetall(self.keys.token(token_id))
                records: list[dict[str, str]] = await pipe.execute()
            for record in records:
                position += 1
                view = view_from_record(record, now_ms) if record else None
                if view is not None and status in (None, view.status):
                    views.append(view)
                    if len(views) == limit:
                        return TokenPage(views, position)

    async def stale(self, unused_days: int = 90, expiring_days: int = 14) -> StaleReport:
        """Active tokens never used, unused for ``unused_days``, or expiring soon."""
        now = utc_now()
        report = StaleReport([], [], [])
        cursor: int | None = 0
        while cursor is not None:
            page = await self.list_tokens(TokenStatus.ACTIVE, cursor, 500)
            for view in page.tokens:
                if view.last_used_at is None:
                    report.never_used.append(view)
                elif view.last_used_at < now - timedelta(days=unused_days):
                    report.unused.append(view)
                if view.expires_at and view.expires_at < now + timedelta(days=expiring_days):
                    report.expiring.append(view)
            cursor = page.next_cursor
        return report
