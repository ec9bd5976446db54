"""What the notifier counts: delivery attempts by webhook and outcome, events held."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["NotifyMetrics"]


class NotifyMetrics:
    """The notifier's metrics, in the registry of the process that runs it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "tokens_notify_deliveries",
            "Webhook delivery attempts, by webhook and outcome (delivered, failed, given_up)",
            ["webhook", "outcome"],
            registry=registry,
        )
        self.held = Gauge(
            "tokens_notify_held_events",
            "Events read and not yet delivered to every webhook",
            registry=registry,
        )
