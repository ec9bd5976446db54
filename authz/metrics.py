"""What the endpoint counts: its decisions by outcome.

The verifier's own metrics (``tokens_verifier_checks_total``, ``tokens_verifier_check_seconds``)
are in the same registry; these add the refusals that never reach the verifier (no
token, no route, an account of the request that cannot be trusted).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["OUTCOMES", "AuthzMetrics"]

OUTCOMES = (
    "accepted",
    "no_token",
    "malformed",
    "unknown",
    "expired",
    "insufficient_scope",
    "ip_not_allowed",
    "unavailable",
    "no_route",
    "bad_request",
)


class AuthzMetrics(Collector):
    """``tokens_authz_decisions_total{outcome}``, kept as plain integers (the hot path)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._decisions = dict.fromkeys(OUTCOMES, 0)
        registry.register(self)

    def decided(self, outcome: str) -> None:
        """Count one reply."""
        self._decisions[outcome] += 1

    def collect(self) -> Iterator[Metric]:
        """What a scrape sees."""
        decisions = CounterMetricFamily(
            "tokens_authz_decisions",
            "Auth subrequests answered, by outcome: accepted or why not",
            labels=["outcome"],
        )
        for outcome, count in list(self._decisions.items()):
            decisions.add_metric([outcome], count)
        yield decisions
