"""The read API: one token, a page of tokens, and the tokens worth a look.

Reads never change state. A record that cannot be shown (a value no writer should have
stored) is left out of a listing, logged and counted in ``skipped``, rather than failing
the whole listing for everyone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

from redis.asyncio import Redis

from contracts import TokenStatus, TokenView, to_millis, utc_now
from token_service.keys import Keys
from token_service.redis.records import view_from_record

__all__ = ["StaleReport", "TokenPage", "TokenReader"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TokenPage:
    """One page of a listing; pass ``next_cursor`` back for the next, ``None`` at the end."""

    tokens: list[TokenView]
    next_cursor: int | None
    skipped: int = 0
    """Records passed over on this page because they cannot be shown (and logged)."""


@dataclass(frozen=True, slots=True)
class StaleReport:
    """Active tokens worth a look: to revoke, or to rotate before they lapse."""

    never_used: list[TokenView] = field(default_factory=list)
    unused: list[TokenView] = field(default_factory=list)
    expiring: list[TokenView] = field(default_factory=list)


class TokenReader:
    """Token state in Redis, read through a client that decodes replies to ``str``."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def get(self, token_id: str) -> TokenView | None:
        """One token as the contract's view, or ``None`` when no token has this id."""
        record = cast(dict[str, str], await self.redis.hgetall(self.keys.token(token_id)))
        return view_from_record(record, token_id=token_id) if record else None

    async def list_tokens(
        self,
        status: TokenStatus | None = None,
        cursor: int = 0,
        limit: int = 50,
        *,
        newest_first: bool = False,
        where: Callable[[TokenView], bool] | None = None,
    ) -> TokenPage:
        """Tokens in creation order, optionally of one status, ``limit`` at a time.

        ``newest_first`` walks the index the other way; ``where`` keeps only the tokens it
        accepts (a search), reading on until the page is full or the index ends.
        """
        views: list[TokenView] = []
        position, skipped = cursor, 0
        now_ms = to_millis(utc_now())
        step = 2 * limit if where is None else max(2 * limit, 500)
        while True:
            ids = await self._ids(position, position + step, newest_first=newest_first)
            if not ids:
                return TokenPage(views, None, skipped)
            async with self.redis.pipeline(transaction=False) as pipe:
                for token_id in ids:
                    pipe.hgetall(self.keys.token(token_id))
                records: list[dict[str, str]] = await pipe.execute()
            for token_id, record in zip(ids, records, strict=True):
                position += 1
                if not record:
                    continue
                try:
                    view = view_from_record(record, now_ms, token_id=token_id)
                except Exception as exc:  # a value no writer should have stored: this one only
                    _log.warning("token record %s cannot be shown: %r", token_id, exc)
                    skipped += 1
                    continue
                if status in (None, view.status) and (where is None or where(view)):
                    views.append(view)
                    if len(views) == limit:
                        return TokenPage(views, position, skipped)

    async def _ids(self, start: int, stop: int, *, newest_first: bool) -> list[str]:
        """Token ids ``start`` to ``stop`` (inclusive) counted from the oldest, or the newest."""
        if not newest_first:
            return cast(list[str], await self.redis.lrange(self.keys.ids, start, stop))
        # The list is oldest first: count from its end, and turn the slice around.
        ids = cast(list[str], await self.redis.lrange(self.keys.ids, -stop - 1, -start - 1))
        return ids[::-1]

    async def stale(self, unused_days: int = 90, expiring_days: int = 14) -> StaleReport:
        """Active tokens never used, unused for ``unused_days``, or expiring soon."""
        now = utc_now()
        report = StaleReport()
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
