"""The gateway ``Verifier``: is this token good for this scope, right now?

A check costs one Redis round trip (a read of ``tokens:secret:<sha256>``), and none at all
for a string that fails the token format's checksum. Concurrent checks issued in the
same event-loop turn share one pipeline, so a busy gateway pays one round trip per
turn rather than one per check, and a revocation is still seen by the very next check:
nothing is cached. When Redis cannot be reached the answer is ``unavailable``: the
verifier fails closed, never open.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from contracts.scopes import grants
from contracts.token_format import DEFAULT_PREFIX, is_well_formed, secret_digest
from token_service.gateway.metrics import VerifierMetrics
from token_service.gateway.usage import UsageReporter
from token_service.keys import Keys

__all__ = ["Accepted", "RejectReason", "Rejected", "Verdict", "Verifier"]


class RejectReason(StrEnum):
    """Why a token was not accepted."""

    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    UNAVAILABLE = "unavailable"


@dataclass(slots=True)
class Accepted:
    """The token is valid and grants the scope."""

    token_id: str
    scopes: tuple[str, ...]
    ok: bool = True


@dataclass(slots=True)
class Rejected:
    """The token is refused, and why."""

    reason: RejectReason
    token_id: str | None = None
    ok: bool = False


Verdict = Accepted | Rejected


_Found = tuple[str, str, str | None]
"""A secret's token_id, scopes and expires_at, as the lookup hash holds them."""
_FIELDS = ("token_id", "scopes", "expires_at")
_MAX_KEYS_PER_CALL = 500


def _field(fields: dict[Any, Any], name: str) -> Any:
    return fields.get(name, fields.get(name.encode()))


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class _Lookups:
    """Coalesces the lookups of one event-loop turn into one round trip.

    A turn's reads go out as one non-transactional pipeline of HMGETs of the same
    ``tokens:secret:<sha256>`` hashes a gateway in any language reads with HGETALL:
    one round trip for the lot, and plain read commands only, so the gateway's Redis
    user needs no right to run scripts.
    """

    def __init__(self, redis: Redis, timeout_s: float) -> None:
        self._redis = redis
        self._timeout_s = timeout_s
        self._hmget_allowed = True
        self._waiting: dict[str, list[asyncio.Future[_Found | None]]] = {}
        self._running: set[asyncio.Task[None]] = set()

    def fetch(self, key: str) -> asyncio.Future[_Found | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Found | None] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.setdefault(key, []).append(future)
        return future

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, {}
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _call(self, keys: list[str]) -> list[list[Any]]:
        if self._hmget_allowed:
            try:
                return await self._hmget_all(keys)
            except NoPermissionError:
                # A gateway user allowed only HGETALL (as the contract names it) gets the
                # same answers from whole hashes, from now on.
                self._hmget_allowed = False
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            hashes: list[dict[Any, Any]] = await pipe.execute()
        return [[_field(fields, name) for name in _FIELDS] for fields in hashes]

    async def _hmget_all(self, keys: list[str]) -> list[list[Any]]:
        # What a non-transactional pipeline sends, without its per-command bookkeeping and
        # per-reply timer, which cost more than the reads themselves at many checks per
        # turn (measured: `python -m bench.verify`). The turn's one deadline is in `_run`.
        pool = self._redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            packed = connection.pack_commands([("HMGET", key, *_FIELDS) for key in keys])
            await connection.send_packed_command(packed, check_health=False)
            replies = [await connection.read_response(timeout=math.inf) for _ in keys]
        except BaseException:
            # Replies may be left unread on the socket: it must not serve anyone else.
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
        return cast(list[list[Any]], replies)

    async def _run(self, batch: dict[str, list[asyncio.Future[_Found | None]]]) -> None:
        keys = list(batch)
        try:
            found: dict[str, _Found | None] = {}
            # One deadline for the whole turn: a stalled Redis fails every check in time.
            async with asyncio.timeout(self._timeout_s):
                for start in range(0, len(keys), _MAX_KEYS_PER_CALL):
                    chunk = keys[start : start + _MAX_KEYS_PER_CALL]
                    replies = await self._call(chunk)
                    for key, (token_id, scopes, expires) in zip(chunk, replies, strict=True):
                        found[key] = (
                            None
                            if token_id is None
                            else (_text(token_id) or "", _text(scopes) or "", _text(expires))
                        )
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


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@functools.lru_cache(maxsize=4096)
def _decide(scope_list: str, wanted: str) -> tuple[tuple[str, ...], bool]:
    # Few distinct scope sets meet few distinct wanted scopes: the answer is worth keeping.
    scopes = tuple(scope_list.split())
    return scopes, grants(scopes, wanted)


def _scope_error(scope: object) -> TypeError | ValueError:
    example = "pass the scope the request needs, such as 'entities:read'"
    if isinstance(scope, str):
        return ValueError(f"Verifier.verify: scope is empty; {example}")
    # The type, not the value: swapped arguments would put a token in the message.
    got = "None" if scope is None else type(scope).__name__
    return TypeError(f"Verifier.verify: scope must be a string; {example} (got {got})")


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
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.keys = Keys(key_prefix)
        self.registry = registry if registry is not None else CollectorRegistry()
        """Where the checks are counted; serve it from the host application's /metrics."""
        self._metrics = VerifierMetrics(
            self.registry, ["accepted", *(reason.value for reason in RejectReason)]
        )
        self.token_prefix = token_prefix
        self.reporter = reporter
        self._lookups = _Lookups(redis, timeout_s)
        self._clock_ms = clock_ms or _now_ms
        self._secret_prefix = self.keys.secret_prefix

    async def verify(self, token: object, scope: str) -> Verdict:
        """Accept ``token`` for ``scope``, or say why not; never raises for a bad token.

        Whatever the request held is a token to judge: anything but a well-formed token
        string (``None`` for a missing header, bytes, a number) is ``malformed``. A missing
        or empty ``scope`` is the caller's bug, not the token's: it raises ``TypeError`` or
        ``ValueError`` rather than refuse the token.
        """
        if not isinstance(scope, str) or not scope:
            raise _scope_error(scope)
        started = time.perf_counter()
        verdict = await self._verify(token, scope)
        self._metrics.checked(
            "accepted" if verdict.ok else verdict.reason,  # type: ignore[union-attr]
            time.perf_counter() - started,
        )
        return verdict

    async def _verify(self, token: object, scope: str) -> Verdict:
        if not isinstance(token, str) or not is_well_formed(token, self.token_prefix):
            return Rejected(RejectReason.MALFORMED)
        try:
            found = await self._lookups.fetch(self._secret_prefix + secret_digest(token))
        except Exception:  # Redis away, stalled or answering nonsense: fail closed
            return Rejected(RejectReason.UNAVAILABLE)
        if found is None:
            return Rejected(RejectReason.UNKNOWN)
        token_id, scope_list, expires = found
        now_ms = self._clock_ms()
        # Redis drops an expired key on its own, but not to the millisecond: the clock rules.
        if expires and (not expires.isdigit() or int(expires) <= now_ms):
            return Rejected(RejectReason.EXPIRED, token_id)
        scopes, granted = _decide(scope_list, scope)
        if not granted:
            return Rejected(RejectReason.INSUFFICIENT_SCOPE, token_id)
        if self.reporter is not None:
            self.reporter.record(token_id, now_ms)
        return Accepted(token_id, scopes)
