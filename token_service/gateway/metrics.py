"""What a gateway counts: its checks by outcome, how long they take, and its verdict cache."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from token_service.gateway.cache import SecretCache

__all__ = ["VERIFY_BUCKETS", "CacheMetrics", "VerifierMetrics"]

VERIFY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class VerifierMetrics(Collector):
    """A gateway's checks by outcome (``accepted`` or the reject reason), and their latency.

    A custom collector rather than a Counter and a Histogram: a check is on a gateway's
    hot path, and plain integers cost a fraction of the library's locked updates. All
    updates happen on the event loop's thread; a scrape reads them as they stand.
    """

    def __init__(self, registry: CollectorRegistry, outcomes: Sequence[str]) -> None:
        self._checks = dict.fromkeys(outcomes, 0)
        self._buckets = [0] * (len(VERIFY_BUCKETS) + 1)  # the last one is +Inf
        self._sum = 0.0
        registry.register(self)

    def checked(self, outcome: str, seconds: float) -> None:
        """Count one verdict."""
        self._checks[outcome] += 1
        self._buckets[bisect.bisect_left(VERIFY_BUCKETS, seconds)] += 1
        self._sum += seconds

    def collect(self) -> Iterator[Metric]:
        """What a scrape sees, in Prometheus's counter and histogram shapes."""
        checks = CounterMetricFamily(
            "tokens_verifier_checks",
            "Token checks, by outcome: accepted or the reason for refusing",
            labels=["outcome"],
        )
        for outcome, count in list(self._checks.items()):
            checks.add_metric([outcome], count)
        yield checks
        cumulative, buckets = 0, []
        for bound, count in zip([*map(str, VERIFY_BUCKETS), "+Inf"], self._buckets, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "tokens_verifier_check_seconds",
            "Time one check took, from the call to the verdict",
            buckets=buckets,
            sum_value=self._sum,
        )


class CacheMetrics(Collector):
    """The verdict cache's own counters, read at scrape time (it counts in plain integers)."""

    def __init__(self, registry: CollectorRegistry, cache: SecretCache) -> None:
        self._cache = cache
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        """Lookups by result, invalidations, losses of tracking, and what is kept."""
        cache = self._cache
        lookups = CounterMetricFamily(
            "tokens_verifier_cache_lookups",
            "Cache lookups: hit, miss, or bypass (tracking down, so the check went to Redis)",
            labels=["result"],
        )
        for result, count in (("hit", cache.hits), ("miss", cache.misses)):
            lookups.add_metric([result], count)
        lookups.add_metric(["bypass"], cache.bypassed)
        yield lookups
        yield CounterMetricFamily(
            "tokens_verifier_cache_invalidations",
            "Secret keys Redis reported changed",
            value=cache.invalidations,
        )
        yield CounterMetricFamily(
            "tokens_verifier_cache_flushes", "FLUSHALL or FLUSHDB seen", value=cache.flushes
        )
        yield CounterMetricFamily(
            "tokens_verifier_cache_tracking_losses",
            "Times the tracking connection was lost (the cache was emptied each time)",
            value=cache.losses,
        )
        yield GaugeMetricFamily(
            "tokens_verifier_cache_live",
            "1 while the cache serves, 0 while bypassed",
            value=int(cache.live),
        )
        yield GaugeMetricFamily("tokens_verifier_cache_entries", "Keys kept", value=len(cache))
        yield GaugeMetricFamily(
            "tokens_verifier_cache_bytes", "Estimated memory the entries take", value=cache.bytes
        )
