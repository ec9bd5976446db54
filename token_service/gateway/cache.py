"""The verdict cache: what the ``Verifier`` read for each secret key, kept honest by Redis.

An entry is what one read of ``tokens:secret:<sha256>`` found (token id, scopes, expiry,
allowlist, and when Redis itself will drop the key) or that the key was absent. The verdict is
still made on every check, against the clock; only the read is saved.

The cache serves only while Redis tracks it (:mod:`token_service.gateway.tracking`
calls :meth:`SecretCache.tracking_up` and ``tracking_down``): every write to a secret key
then reaches :meth:`SecretCache.invalidate`. Two counters keep a read that raced a write
out of the cache:

* ``epoch`` moves when tracking starts or stops and on a flush; a read that began in an
  earlier epoch is not stored;
* ``seq`` moves on every invalidation, and a key that is invalidated while a read of it is
  in flight remembers the ``seq`` of that invalidation (only while the read lasts, so the
  memory is bounded by the reads in flight); a read that began before it is not stored.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["MISS", "CacheOptions", "Found", "ReadTicket", "SecretCache"]

Found = tuple[str, str, str | None, int | None, str | None]
"""A secret's token_id, scopes, expires_at (as stored), when Redis drops the key (ms), and
its allowlist (as stored: space-separated CIDR blocks; ``None``: any address)."""

MISS = object()
"""What :meth:`SecretCache.get` answers when it cannot serve the key."""

_ENTRY_OVERHEAD = 400
"""Bytes an entry costs beyond its strings: the dict slot, the tuples, object headers."""


@dataclass(frozen=True, slots=True)
class CacheOptions:
    """How much a ``Verifier`` may keep, for how long, and how it watches its tracking."""

    max_entries: int = 100_000
    """Secret keys kept at most (present or absent); the least recently used go first."""
    max_bytes: int = 64 * 1024 * 1024
    """An estimate of the memory the entries take, capped the same way."""
    max_age_s: float = 60.0
    """No entry is served older than this, whatever else fails."""
    heartbeat_s: float = 1.0
    """After this long without a word from Redis the tracking connection sends PING; with
    no answer after as long again, the connection counts as lost."""

    def __post_init__(self) -> None:
        if self.max_entries < 1 or self.max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        if not self.max_age_s > 0 or not self.heartbeat_s > 0:
            raise ValueError("max_age_s and heartbeat_s must be positive")


@dataclass(slots=True)
class ReadTicket:
    """What a read looked like when it began: the only state that may store its result."""

    keys: list[str]
    epoch: int
    seq: int


class SecretCache:
    """Bounded, least-recently-used reads of secret keys; serves only while tracked."""

    def __init__(
        self, options: CacheOptions, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.options = options
        self.live = False
        """Whether Redis is tracking the secret keys for us right now."""
        self.disabled = False
        """Set for good when the gateway's Redis user may not read what an entry needs."""
        self.epoch = 0
        self.seq = 0
        self.bytes = 0
        self.hits = self.misses = self.bypassed = 0
        self.invalidations = self.flushes = self.losses = 0
        self._monotonic = monotonic
        self._entries: OrderedDict[str, tuple[Found | None, float, int]] = OrderedDict()
        self._in_flight: dict[str, int] = {}
        self._touched: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Found | object | None:
        """The stored read of ``key`` (``None``: absent), or :data:`MISS`."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return MISS
        if self._monotonic() - entry[1] > self.options.max_age_s:
            self._drop(key)
            self.misses += 1
            return MISS
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def begin(self, keys: Iterable[str]) -> ReadTicket:
        """Call before a read is sent; pair with :meth:`end` whatever happens."""
        ticket = ReadTicket(list(keys), self.epoch if self.live else -1, self.seq)
        in_flight = self._in_flight
        for key in ticket.keys:
            in_flight[key] = in_flight.get(key, 0) + 1
        return ticket

    def store(self, ticket: ReadTicket, found: dict[str, Found | None]) -> None:
        """Keep what the read found, unless tracking or a write may have moved under it."""
        if ticket.epoch != self.epoch or not self.live:
            return
        touched, now = self._touched, self._monotonic()
        for key in ticket.keys:
            if key in found and touched.get(key, -1) <= ticket.seq:
                self._put(key, found[key], now)

    def end(self, ticket: ReadTicket) -> None:
        """The read is over: forget what was kept for it alone."""
        in_flight = self._in_flight
        for key in ticket.keys:
            left = in_flight.get(key, 1) - 1
            if left > 0:
                in_flight[key] = left
            else:
                in_flight.pop(key, None)
                self._touched.pop(key, None)

    def invalidate(self, keys: Iterable[str] | None) -> None:
        """Redis says these keys changed; ``None`` means everything did (a flush)."""
        if keys is None:
            self.flushes += 1
            self._reset()
            return
        self.seq += 1
        for key in keys:
            self.invalidations += 1
            if key in self._in_flight:
                self._touched[key] = self.seq
            self._drop(key)

    def tracking_up(self) -> None:
        """Redis tracks the secret keys from now on: start afresh."""
        self._reset()
        self.live = not self.disabled

    def disable(self) -> None:
        """Serve nothing and keep nothing from now on."""
        self.disabled = True
        self.tracking_down()

    def tracking_down(self) -> None:
        """Tracking is lost: nothing kept can be trusted, and nothing is kept until it is back."""
        if self.live:
            self.losses += 1
        self.live = False
        self._reset()

    def _reset(self) -> None:
        self.epoch += 1
        self._entries.clear()
        self._touched.clear()
        self.bytes = 0

    def _put(self, key: str, found: Found | None, now: float) -> None:
        self._drop(key)
        size = _ENTRY_OVERHEAD + len(key)
        if found is not None:
            size += len(found[0]) + len(found[1]) + len(found[2] or "") + len(found[4] or "")
        self._entries[key] = (found, now, size)
        self.bytes += size
        options = self.options
        while len(self._entries) > options.max_entries or self.bytes > options.max_bytes:
            _, (_, _, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[2]
