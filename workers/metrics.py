"""What the audit worker counts: uses folded, repeated or skipped; how fresh the newest use is."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge

from token_service.ops.metrics import dead_letters

__all__ = ["AuditMetrics"]


class AuditMetrics:
    """The audit worker's metrics, in the registry of the process that runs it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.usage_folded = Counter(
            "tokens_usage_events_folded",
            "TokenUsed events folded into last-used times and daily counts",
            registry=registry,
        )
        self.usage_repeated = Counter(
            "tokens_usage_events_repeated",
            "TokenUsed events skipped because their event id was already folded",
            registry=registry,
        )
        self.usage_skipped = Counter(
            "tokens_usage_events_skipped",
            "TokenUsed events not folded: their token is unknown, revoked or expired",
            registry=registry,
        )
        self.audit_folded = Counter(
            "tokens_audit_events_folded",
            "Lifecycle events added to the tokens' audit trails",
            registry=registry,
        )
        self.newest_use_age = Gauge(
            "tokens_newest_folded_use_age_seconds",
            "Seconds since the newest use folded so far (NaN before the first)",
            registry=registry,
        )
        self.newest_use_age.set_function(self._age)
        self.dead_letters = dead_letters(registry)
        self._newest_ms: int | None = None

    def folded_usage(self, folded: int, repeated: int, skipped: int, newest_used_ms: int) -> None:
        """Count one fold's outcome."""
        self.usage_folded.inc(folded)
        self.usage_repeated.inc(repeated)
        self.usage_skipped.inc(skipped)
        if folded and (self._newest_ms is None or newest_used_ms > self._newest_ms):
            self._newest_ms = newest_used_ms

    def _age(self) -> float:
        if self._newest_ms is None:
            return float("nan")
        return max(0.0, time.time() - self._newest_ms / 1000)
