"""Durations like ``90d`` or ``1h`` and dates like ``2027-01-31``, as people type them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["parse_date", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(text: str) -> timedelta:
    """``45s``, ``30m``, ``1h``, ``90d`` or ``2w``."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"'{text}' is not a duration like 30m, 1h, 90d or 2w")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_date(text: str) -> datetime:
    """``2027-01-31`` (midnight UTC) or a full ISO 8601 time; a time without zone is UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'{text}' is not a date like 2027-01-31") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
