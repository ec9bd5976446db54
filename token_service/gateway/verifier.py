"""The gateway ``Verifier``: is this token good for this scope, right now?

A check costs one Redis round trip (a read of ``tokens:secret:<sha256>``), and none at all
for a string that fails the token format's checksum. Concurrent checks issued in the
same event-loop turn share one pipeline (:mod:`token_service.gateway.lookups`), so a busy
gateway pays one round trip per turn rather than one per check. By default nothing is
cached, and a revocation is seen by the very next check; with a verdict cache
(:class:`~token_service.gateway.cache.CacheOptions`) a check of a key read before costs
no round trip, and Redis reports every change to the secret keys so that the cache
forgets it. When Redis cannot be reached the answer is ``unavailable``: the verifier
fails closed, never open. A token whose hash holds an allowlist (``allowed_cidrs``,
version 2.x) is accepted only from a client address inside it (``client_ip``), read in
the same one round trip and kept in the same cache entry.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from contracts.networks import address_allowed
from contracts.scopes import grants
from contracts.token_format import DEFAULT_PREFIX, MAX_TOKEN_BODY, is_well_formed, secret_digest
from token_service.gateway.cache import MISS, CacheOptions, Found, SecretCache
from token_service.gateway.lookups import Lookups
from token_service.gateway.metrics import CacheMetrics, VerifierMetrics
from token_service.gateway.tracking import Tracking
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
    IP_NOT_ALLOWED = "ip_not_allowed"
    """The token has an allowlist (version 2.x) and the client's address is not in it."""


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


_sha256 = hashlib.sha256


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
    """Checks presented tokens for a gateway; one instance per process, shared by all requests.

    With ``cache`` (off by default), what each read found is kept while Redis tracks the
    secret keys for this process (see :mod:`token_service.gateway.cache`); call
    :meth:`start` to have tracking up before the first check (it starts by itself
    otherwise) and :meth:`close` on shutdown.
    """

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
        cache: CacheOptions | None = None,
    ) -> None:
        self.keys = Keys(key_prefix)
        self.registry = registry if registry is not None else CollectorRegistry()
        """Where the checks are counted; serve it from the host application's /metrics."""
        self._metrics = VerifierMetrics(
            self.registry, ["accepted", *(reason.value for reason in RejectReason)]
        )
        self.token_prefix = token_prefix
        self.reporter = reporter
        self._clock_ms = clock_ms or _now_ms
        self._secret_prefix = self.keys.secret_prefix
        self._token_length = len(token_prefix) + MAX_TOKEN_BODY
        self.cache: SecretCache | None = None
        """The verdict cache, when asked for: its counters and whether it serves (``live``)."""
        self._tracking: Tracking | None = None
        if cache is not None:
            self.cache = SecretCache(cache)
            self._tracking = Tracking(
                redis, self._secret_prefix, self.cache, heartbeat_s=cache.heartbeat_s
            )
            CacheMetrics(self.registry, self.cache)
        self._lookups = Lookups(redis, timeout_s, self._clock_ms, self.cache)

    async def start(self, timeout_s: float = 5.0) -> bool:
        """Set the cache's tracking up, waiting up to ``timeout_s``; whether the cache serves.

        Without a cache there is nothing to start, and the answer is ``False``. Checks are
        right either way: until tracking is up they all go to Redis.
        """
        if self._tracking is None:
            return False
        return await self._tracking.wait_live(timeout_s)

    async def close(self) -> None:
        """End caching for good and close the tracking connection; checks still work."""
        if self._tracking is not None:
            await self._tracking.close()

    async def verify(self, token: object, scope: str, *, client_ip: str | None = None) -> Verdict:
        """Accept ``token`` for ``scope``, or say why not; never raises for a bad token.

        ``client_ip`` is the address the request came from, as the gateway knows it (the
        peer, or what a trusted proxy says). A token with an allowlist is refused
        ``ip_not_allowed`` from any other address, and from an unknown one (``None``).

        Whatever the request held is a token to judge: anything but a well-formed token
        string (``None`` for a missing header, bytes, a number) is ``malformed``. A missing
        or empty ``scope`` is the caller's bug, not the token's: it raises ``TypeError`` or
        ``ValueError`` rather than refuse the token.
        """
        if not isinstance(scope, str) or not scope:
            raise _scope_error(scope)
        started = time.perf_counter()
        verdict = self._look(token, scope, client_ip)
        if isinstance(verdict, str):
            verdict = await self._read(verdict, scope, client_ip)
        return self._counted(verdict, started)

    def verify_now(
        self, token: object, scope: str, *, client_ip: str | None = None
    ) -> Verdict | None:
        """:meth:`verify` when it needs no Redis read, else ``None`` (then call
        :meth:`verify_read`).

        A malformed token, and with the verdict cache a key it holds, are judged here
        without a coroutine: a server can answer such a check without a task.
        """
        if not isinstance(scope, str) or not scope:
            raise _scope_error(scope)
        started = time.perf_counter()
        verdict = self._look(token, scope, client_ip)
        return None if isinstance(verdict, str) else self._counted(verdict, started)

    async def verify_read(
        self, token: object, scope: str, *, client_ip: str | None = None
    ) -> Verdict:
        """:meth:`verify` without looking in the verdict cache: a read from Redis (its
        result kept for the next check), for a caller whose :meth:`verify_now` said None.

        The token's format is still checked, so it is safe on any input.
        """
        if not isinstance(scope, str) or not scope:
            raise _scope_error(scope)
        started = time.perf_counter()
        if (
            not isinstance(token, str)
            or len(token) != self._token_length
            or not is_well_formed(token, self.token_prefix)
        ):
            verdict: Verdict = Rejected(RejectReason.MALFORMED)
        else:
            verdict = await self._read(self._secret_prefix + secret_digest(token), scope, client_ip)
        return self._counted(verdict, started)

    def _look(self, token: object, scope: str, client_ip: str | None) -> Verdict | str:
        """The verdict if no read is needed, else the secret key to read."""
        # The length first: a 32 MB header is refused before anything reads all of it.
        if not isinstance(token, str) or len(token) != self._token_length:
            return Rejected(RejectReason.MALFORMED)
        key = None
        cache = self.cache
        if cache is not None:
            if cache.live:
                # secret_digest, inlined: a hit costs little else.
                key = self._secret_prefix + _sha256(token.encode()).hexdigest()
                found = cache.get(key)
                if found is not MISS:
                    # Only a well-formed token's key is ever stored: no need to check again.
                    return self._judge(found, scope, client_ip)  # type: ignore[arg-type]
            else:
                self._bypass(cache)
        if not is_well_formed(token, self.token_prefix):
            return Rejected(RejectReason.MALFORMED)
        return key or self._secret_prefix + secret_digest(token)

    async def _read(self, key: str, scope: str, client_ip: str | None) -> Verdict:
        try:
            found = await self._lookups.fetch(key)
        except Exception:  # Redis away, stalled or answering nonsense: fail closed
            return Rejected(RejectReason.UNAVAILABLE)
        return self._judge(found, scope, client_ip)

    def _counted(self, verdict: Verdict, started: float) -> Verdict:
        self._metrics.checked(
            "accepted" if verdict.ok else verdict.reason,  # type: ignore[union-attr]
            time.perf_counter() - started,
        )
        return verdict

    def _bypass(self, cache: SecretCache) -> None:
        cache.bypassed += 1
        if self._tracking is not None and not self._tracking.started:
            self._tracking.start()

    def _judge(self, found: Found | None, scope: str, client_ip: str | None) -> Verdict:
        if found is None:
            return Rejected(RejectReason.UNKNOWN)
        token_id, scope_list, expires, gone_ms, allowed = found
        if expires or gone_ms is not None:
            now_ms = self._clock_ms()
            # Redis drops an expired key on its own, but not to the millisecond: the clock
            # rules.
            if expires and (not expires.isdigit() or int(expires) <= now_ms):
                return Rejected(RejectReason.EXPIRED, token_id)
            if gone_ms is not None and gone_ms <= now_ms:  # a kept read of a key Redis dropped
                return Rejected(RejectReason.UNKNOWN)
        # Before the scope: a caller from elsewhere learns nothing of what the token grants.
        if allowed and not address_allowed(allowed, client_ip):
            return Rejected(RejectReason.IP_NOT_ALLOWED, token_id)
        scopes, granted = _decide(scope_list, scope)
        if not granted:
            return Rejected(RejectReason.INSUFFICIENT_SCOPE, token_id)
        if self.reporter is not None:
            self.reporter.record(token_id, self._clock_ms())
        return Accepted(token_id, scopes)
