"""What a gateway counts: its checks by outcome, and how long they take."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["VERIFY_BUCKETS", "VerifierMetrics"]

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
