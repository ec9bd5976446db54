"""What ``bench.soak`` measured, and whether memory stayed flat and every use was counted."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Sample", "report"]

FLAT_PCT_PER_MIN = 1.0
BACKLOG_SLACK = 1_000  # two of the audit worker's batches
DEDUPE_WINDOW_MIN = 120  # AUDIT_DEDUPE_HOURS (1) plus the hour being filled


WINDOW = "seen event ids"
"""The audit worker's dedupe window, as ``bench.families`` calls it."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading: minutes since the start, ``used_memory``, key families, backlogs."""

    minutes: float
    used: int
    families: dict[str, tuple[int, int]]
    """label -> (keys, bytes by ``MEMORY USAGE``)."""
    backlog: dict[str, int]

    @property
    def seen(self) -> int:
        """Bytes of the dedupe window."""
        return self.families.get(WINDOW, (0, 0))[1]

    @property
    def others(self) -> int:
        """Bytes of every key but the dedupe window."""
        return sum(size for label, (_, size) in self.families.items() if label != WINDOW)

    def line(self) -> str:
        """The reading as one printed line."""
        backlog = "  ".join(f"{label} {n:,}" for label, n in self.backlog.items())
        return (
            f"{self.minutes:5.1f} min  used_memory {self.used / 1e6:6.2f} MB  dedupe window "
            f"{self.seen / 1e6:5.2f} MB  other keys {self.others / 1e6:6.2f} MB  "
            f"backlog: {backlog}"
        )


class _Gateway(Protocol):
    name: str
    verdicts: dict[str, int]
    reporter: Any


class _Trickle(Protocol):
    sent: int
    failed: list[str]


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(minutes, value)`` points, per minute."""
    if len(points) < 2:
        return 0.0
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _memory(second: Sequence[Sample]) -> bool:
    mean = statistics.fmean(s.used for s in second)
    print(
        f"Second half ({second[0].minutes:.1f} to {second[-1].minutes:.1f} min, "
        f"{len(second)} readings, used_memory {mean / 1e6:.2f} MB on average), slopes:"
    )

    def slope(name: str, value: Callable[[Sample], int], note: str = "") -> float:
        rate = slope_per_minute([(s.minutes, value(s)) for s in second])
        print(f"  {name:<36}{rate / 1e3:+9.1f} KB/min {100 * rate / mean:+6.2f}%/min  {note}")
        return rate

    slope("used_memory", lambda s: s.used)
    seen = slope("dedupe window (MEMORY USAGE)", lambda s: s.seen)
    print(
        f"{'':<40}(grows for {DEDUPE_WINDOW_MIN} min, to about "
        f"{seen * DEDUPE_WINDOW_MIN / 1e6:.0f} MB at this rate)"
    )
    slope(
        "used_memory less the dedupe window",
        lambda s: s.used - s.seen,
        "(MEMORY USAGE leaves out ~8 B of allocator rounding per event id)",
    )
    others = slope("every other key (MEMORY USAGE)", lambda s: s.others)
    flat = 100 * others / mean < FLAT_PCT_PER_MIN
    print(f"  every other key flat (under {FLAT_PCT_PER_MIN:g}%/min): {_verdict(flat)}")
    return flat


def _families(measured: Sequence[Sample]) -> None:
    start, end = measured[0], measured[-1]
    minutes = end.minutes - start.minutes
    if minutes <= 0:
        return
    print(f"MEMORY USAGE by key family, {start.minutes:.1f} to {end.minutes:.1f} min:")
    changes = []
    for label in sorted(set(start.families) | set(end.families)):
        keys0, bytes0 = start.families.get(label, (0, 0))
        keys1, bytes1 = end.families.get(label, (0, 0))
        changes.append((bytes1 - bytes0, label, keys0, keys1, bytes1))
    for change, label, keys0, keys1, total in sorted(changes, reverse=True):
        print(
            f"  {label:<24}{keys0:>8,} -> {keys1:<8,}{total / 1e6:>8.2f} MB"
            f"{change / 1e3 / minutes:>+10.1f} KB/min"
        )


def _backlogs(first: Sequence[Sample], second: Sequence[Sample], last: Sample) -> bool:
    ok = True
    print("backlog (pending + not yet delivered), most in each half, and at the end:")
    for label in last.backlog:
        before = max((s.backlog[label] for s in first), default=0)
        after = max(s.backlog[label] for s in second)
        bounded = after <= max(before, BACKLOG_SLACK)
        ok = ok and bounded
        print(f"  {label:<9}{before:>8,}{after:>8,}{last.backlog[label]:>8,}  {_verdict(bounded)}")
    return ok


def _counts(gateways: Sequence[_Gateway], folded: int) -> bool:
    accepted = sum(g.verdicts.get("accepted", 0) for g in gateways)
    others = {k: v for g in gateways for k, v in g.verdicts.items() if k != "accepted"}
    dropped = sum(g.reporter.dropped_uses + g.reporter.dropped_reports for g in gateways)
    ok = accepted == folded and dropped == 0 and not others
    print(
        f"uses: the gateways accepted {accepted:,} checks (other verdicts: {others or 'none'}; "
        f"dropped by the reporters: {dropped}); daily counts folded: {folded:,}  "
        f"{_verdict(ok)}"
    )
    return ok


def report(
    args: argparse.Namespace,
    samples: Sequence[Sample],
    gateways: Sequence[_Gateway],
    trickle: _Trickle,
    folded: int,
) -> bool:
    """Print the verdicts; True when memory is flat, backlogs bounded and counts equal."""
    print(
        f"\nSoak: {args.minutes:g} min, {args.tokens:,} tokens, {len(gateways)} gateways at "
        f"{args.rate:g} checks/s in all, a command every {args.command_every:g} s "
        f"({trickle.sent} sent, {len(trickle.failed)} not ok{': ' if trickle.failed else ''}"
        f"{'; '.join(trickle.failed[:3])})."
    )
    half = samples[-1].minutes / 2
    first = [s for s in samples if s.minutes < half]
    second = [s for s in samples if s.minutes >= half]
    flat = _memory(second)
    _families(second)
    bounded = _backlogs(first, second, samples[-1])
    counted = _counts(gateways, folded)
    return flat and bounded and counted and not trickle.failed
