"""The gateway ``Verifier``: is this token good for this scope, right now?

A check costs one Redis round trip (``HGETALL tokens:secret:<sha256>``), and none at all
for a string that fails the token format's checksum. Concurrent checks issued in the
same event-loop turn share one pipeline, so a busy gateway pays one round trip per
turn rather than one per check, and a revocation is still seen by the very next check:
nothing is cached. When Redis cannot be reached the answer is ``unavailable``: the
verifier fails closed, never open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from contracts.scopes import grants
from contracts.token_format import DEFAULT_PREFIX, is_well_formed, secret_digest
from token_service.keys import Keys
from token_service.usage import UsageReporter

__all__ = ["Accepted", "RejectReason", "Rejected", "Verdict", "Verifier"]


class RejectReason(StrEnum):
    """Why a token was not accepted."""

    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Accepted:
    """The token is valid and grants the scope."""

    token_id: str
    scopes: tuple[str, ...]
    ok: bool = True


@dataclass(frozen=True, slots=True)
class Rejected:
    """The token is refused, and why."""

    reason: RejectReason
    token_id: str | None = None
    ok: bool = False


Verdict = Accepted | Rejected


class _Lookups:
    """Coalesces the HGETALLs of one event-loop turn into a single pipeline."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._waiting: dict[str, list[asyncio.Future[dict[str, str] | None]]] = {}
        self._running: set[asyncio.Task[None]] = set()

    def fetch(self, key: str) -> asyncio.Future[dict[str, str] | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, str] | None] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.setdefault(key, []).append(future)
        return future

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, {}
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, batch: dict[str, list[asyncio.Future[dict[str, str] | None]]]) -> None:
        keys = list(batch)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                results: list[Any] = await pipe.execute()
            found = {
                key: _text(fields) if fields else None
                for key, fields in zip(keys, results, strict=True)
            }
        except BaseException as exc:  # every waiter must hear of it, or it would wait forever
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for key, futures in batch.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(key))


def _text(fields: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in fields.items()
    }


class Verifier:
    """Checks presented tokens for a gateway; one instance per process, shared by all requests."""

    def __init__(
        self,
        redis: Redis,
        *,
        key_prefix: str = "tokens",
        token_prefix: str = DEFAULT_PREFIX,
        reporter: UsageReporter | None = None,
        clock_ms: Callable[[], int] | None = None,
        timeout_s: float = 1.0,
    ) -> None:
        self.keys = Keys(key_prefix)
        self.token_prefix = token_prefix
        self.reporter = reporter
        self._lookups = _Lookups(redis)
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.timeout_s = timeout_s

    async def verify(self, token: str, scope: str) -> Verdict:
        """Accept ``token`` for ``scope``, or say why not; never raises for a bad token."""
        if not is_well_formed(token, self.token_prefix):
            return Rejected(RejectReason.MALFORMED)
        try:
            async with asyncio.timeout(self.timeout_s):
                found = await self._lookups.fetch(self.keys.secret(secret_digest(token)))
        except Exception:  # Redis away, stalled or answering nonsense: fail closed
            return Rejected(RejectReason.UNAVAILABLE)
        if found is None or "token_id" not in found:
            return Rejected(RejectReason.UNKNOWN)
        token_id = found["token_id"]
        now_ms = self._clock_ms()
        expires = found.get("expires_at", "")
        # Redis drops an expired key on its own, but not to the millisecond: the clock rules.
        if expires and (not expires.isdigit() or int(expires) <= now_ms):
            return Rejected(RejectReason.EXPIRED, token_id)
        scopes = tuple(found.get("scopes", "").split())
        if not grants(scopes, scope):
            return Rejected(RejectReason.INSUFFICIENT_SCOPE, token_id)
        if self.reporter is not None:
            self.reporter.record(token_id, now_ms)
        return Accepted(token_id, scopes)
