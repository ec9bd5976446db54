"""Prometheus metrics of the token service and the audit worker.

Each process keeps its own ``CollectorRegistry`` (never the library's global one), so
that tests, and a process that runs the service and the worker together, can hold
several. Metrics that both components report (dead letters, consumer groups) are
created once per registry and shared.

Names, all under ``tokens_``:

- ``commands_handled_total{type, outcome}``: outcome is ``ok``, ``duplicate``, an error
  code (``invalid``, ``forbidden``, ``not_found``, ``conflict``, ``internal``) or
  ``dead_letter``
- ``command_handling_seconds{type}``: from a batch's arrival to its acknowledgement
- ``dead_letters_total{stream}``
- ``group_pending{stream, group}``, ``group_lag{stream, group}``: read from
  ``XINFO GROUPS`` at each scrape
- ``usage_events_folded_total``, ``usage_events_repeated_total``,
  ``audit_events_folded_total``, ``newest_folded_use_age_seconds`` (see
  :mod:`workers.metrics`)
- ``verifier_checks_total{outcome}``, ``verifier_check_seconds``: a gateway's checks, in the
  registry its ``Verifier`` is given (or makes), for the host application to serve
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.asyncio import Redis

from contracts import COMMAND_TYPES

__all__ = ["CommandMetrics", "GroupMetrics", "dead_letters", "shared"]

_C = TypeVar("_C")
_SHARED: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = weakref.WeakKeyDictionary()
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def shared(registry: CollectorRegistry, name: str, build: Callable[[], _C]) -> _C:
    """The collector ``name`` of ``registry``, built on first use."""
    collectors = _SHARED.setdefault(registry, {})
    if name not in collectors:
        collectors[name] = build()
    found: _C = collectors[name]
    return found


def dead_letters(registry: CollectorRegistry) -> Counter:
    """Entries moved to the dead-letter stream, by the stream they came from."""
    return shared(
        registry,
        "dead_letters",
        lambda: Counter(
            "tokens_dead_letters",
            "Entries moved to the dead-letter stream, by the stream they came from",
            ["stream"],
            registry=registry,
        ),
    )


class CommandMetrics:
    """What the command handler counts: commands by type and outcome, and how long they took."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.handled = Counter(
            "tokens_commands_handled",
            "Commands handled, by type and outcome",
            ["type", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "tokens_command_handling_seconds",
            "Time from a batch's arrival to the acknowledgement of its commands",
            ["type"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.dead_letters = dead_letters(registry)

    def handled_command(self, command_type: str, outcome: str, seconds: float) -> None:
        """Count one command whose outcome is settled."""
        # Types come from the wire: anything but a known command type is one label value.
        label = command_type if command_type in COMMAND_TYPES else "unknown"
        self.handled.labels(label, outcome).inc()
        self.latency.labels(label).observe(seconds)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _member(info: dict[Any, Any], name: str) -> Any:
    return info.get(name, info.get(name.encode()))


class GroupMetrics:
    """Pending entries and lag of consumer groups, read from Redis when metrics are scraped."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending: Gauge = shared(
            registry,
            "group_pending",
            lambda: Gauge(
                "tokens_group_pending",
                "Entries delivered to the group but not yet acknowledged",
                ["stream", "group"],
                registry=registry,
            ),
        )
        self.lag: Gauge = shared(
            registry,
            "group_lag",
            lambda: Gauge(
                "tokens_group_lag",
                "Entries in the stream not yet delivered to the group",
                ["stream", "group"],
                registry=registry,
            ),
        )

    async def groups(self, redis: Redis, stream: str) -> dict[str, dict[Any, Any]]:
        """``XINFO GROUPS`` of ``stream``, by group name; empty if the stream is missing."""
        try:
            infos = await redis.xinfo_groups(stream)
        except Exception as exc:
            if "no such key" in str(exc).lower():
                return {}
            raise
        return {_text(_member(info, "name")): info for info in infos}

    async def refresh(
        self, redis: Redis, wanted: Sequence[tuple[str, str]], timeout_s: float = 2.0
    ) -> None:
        """Set both gauges for each ``(stream, group)``; a missing group leaves them unset."""
        async with asyncio.timeout(timeout_s):
            for stream, group in wanted:
                info = (await self.groups(redis, stream)).get(group)
                if info is None:
                    continue
                self.pending.labels(stream, group).set(int(_member(info, "pending") or 0))
                lag = _member(info, "lag")
                # Redis reports no lag when it cannot tell (after deletions): say so, not 0.
                self.lag.labels(stream, group).set(float("nan") if lag is None else int(lag))
