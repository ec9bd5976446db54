"""How times read on a page: relative for a glance, absolute (UTC) on hover."""

from __future__ import annotations

from datetime import datetime

from contracts import utc_now

__all__ = ["absolute", "relative"]

_UNITS = (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600))


def absolute(moment: datetime | None) -> str:
    """``2026-11-30 14:05 UTC``; an em dash for no time."""
    if moment is None:
        return "\u2014"
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def relative(moment: datetime | None, never: str = "never", now: datetime | None = None) -> str:
    """``in 29 days``, ``3 hours ago``, ``just now``; ``never`` for no time."""
    if moment is None:
        return never
    seconds = int((moment - (now or utc_now())).total_seconds())
    span = abs(seconds)
    if span < 60:
        return "just now"
    amount, unit = span // 60, "minute"
    for name, size in _UNITS:
        if span >= size:
            amount, unit = span // size, name
            break
    words = f"{amount} {unit}{'' if amount == 1 else 's'}"
    return f"in {words}" if seconds > 0 else f"{words} ago"
