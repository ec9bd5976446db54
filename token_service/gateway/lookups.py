"""Reads of secret keys for the ``Verifier``: one round trip per event-loop turn.

A turn's reads go out as one non-transactional pipeline of HMGETs of the same
``tokens:secret:<sha256>`` hashes a gateway in any language reads with HGETALL: one
round trip for the lot, and plain read commands only, so the gateway's Redis user needs
no right to run scripts.

With a :class:`~token_service.gateway.cache.SecretCache`, each HMGET is followed by a
PTTL of the same key, so that an entry knows when Redis will drop the key (a rotated-out
secret's grace ends that way, with no field saying so), and what the read found is
stored unless a write to the key may have crossed it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from token_service.gateway.cache import Found, SecretCache

__all__ = ["Lookups"]

_log = logging.getLogger("token_service.gateway.verifier")

# allowed_cidrs is optional (version 2.x): absent on tokens without an allowlist.
_FIELDS = ("token_id", "scopes", "expires_at", "allowed_cidrs")
_MAX_KEYS_PER_CALL = 500


def _field(fields: dict[Any, Any], name: str) -> Any:
    return fields.get(name, fields.get(name.encode()))


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _found(reply: list[Any], gone_ms: int | None) -> Found | None:
    token_id, scopes, expires, allowed = reply
    if token_id is None:
        return None
    return (_text(token_id) or "", _text(scopes) or "", _text(expires), gone_ms, _text(allowed))


class Lookups:
    """Coalesces the lookups of one event-loop turn into one round trip."""

    def __init__(
        self,
        redis: Redis,
        timeout_s: float,
        clock_ms: Callable[[], int],
        cache: SecretCache | None = None,
    ) -> None:
        self._redis = redis
        self._clock_ms = clock_ms
        self._timeout_s = timeout_s
        self._cache = cache
        self._hmget_allowed = True
        self._waiting: dict[str, list[asyncio.Future[Found | None]]] = {}
        self._running: set[asyncio.Task[None]] = set()

    def fetch(self, key: str) -> asyncio.Future[Found | None]:
        """What Redis holds under ``key`` (``None``: no such key), read with this turn's others."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Found | None] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.setdefault(key, []).append(future)
        return future

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, {}
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _call(self, keys: list[str]) -> list[Found | None]:
        cache = self._cache
        if self._hmget_allowed:
            sent_ms = self._clock_ms()
            try:
                replies = await self._send(keys, with_ttl=cache is not None)
            except NoPermissionError as exc:
                if cache is not None:
                    # Without a key's TTL an entry could outlive a rotated-out secret.
                    _log.warning("verdict cache off: HMGET or PTTL was refused: %s", exc)
                    cache.disable()
                    self._cache = None
                    return await self._call(keys)
                # A gateway user allowed only HGETALL (as the contract names it) gets the
                # same answers from whole hashes, from now on.
                self._hmget_allowed = False
            else:
                if cache is None:
                    return [_found(reply, None) for reply in replies]
                # A PTTL below 0 means no TTL (or no key); counted from before the send,
                # the key's end comes early rather than late.
                return [
                    _found(replies[i], None if replies[i + 1] < 0 else sent_ms + replies[i + 1])
                    for i in range(0, len(replies), 2)
                ]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            hashes: list[dict[Any, Any]] = await pipe.execute()
        return [_found([_field(fields, name) for name in _FIELDS], None) for fields in hashes]

    async def _send(self, keys: list[str], *, with_ttl: bool) -> list[Any]:
        # What a non-transactional pipeline sends, without its per-command bookkeeping and
        # per-reply timer, which cost more than the reads themselves at many checks per
        # turn (measured: `python -m bench.verify`). The turn's one deadline is in `_run`.
        commands: list[tuple[str, ...]] = []
        for key in keys:
            commands.append(("HMGET", key, *_FIELDS))
            if with_ttl:
                commands.append(("PTTL", key))
        pool = self._redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_packed_command(
                connection.pack_commands(commands), check_health=False
            )
            replies: list[Any] = [
                await connection.read_response(timeout=math.inf) for _ in commands
            ]
        except BaseException:
            # Replies may be left unread on the socket: it must not serve anyone else.
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
        return replies

    async def _read(self, keys: list[str]) -> dict[str, Found | None]:
        found: dict[str, Found | None] = {}
        # One deadline for the whole turn: a stalled Redis fails every check in time.
        async with asyncio.timeout(self._timeout_s):
            for start in range(0, len(keys), _MAX_KEYS_PER_CALL):
                chunk = keys[start : start + _MAX_KEYS_PER_CALL]
                found.update(zip(chunk, await self._call(chunk), strict=True))
        return found

    async def _run(self, batch: dict[str, list[asyncio.Future[Found | None]]]) -> None:
        cache = self._cache
        ticket = cache.begin(batch) if cache is not None else None
        try:
            found = await self._read(list(batch))
            if cache is not None and ticket is not None:
                cache.store(ticket, found)
        except BaseException as exc:  # every waiter must hear of it, or it would wait forever
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        finally:
            if cache is not None and ticket is not None:
                cache.end(ticket)
        for key, futures in batch.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(key))
