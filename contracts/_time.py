"""Wire timestamps: RFC 3339 in UTC with milliseconds, such as ``2026-11-28T01:35:49.123Z``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer

__all__ = ["Timestamp", "format_timestamp", "from_millis", "to_millis", "utc_now"]


def utc_now() -> datetime:
    """The current time, in UTC, cut to whole milliseconds as the wire carries it."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_timestamp(moment: datetime) -> str:
    """Render an aware datetime the way the contract writes times."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def to_millis(moment: datetime) -> int:
    """Milliseconds since the epoch, as the gateway lookup stores expiry (exact, no floats)."""
    return (moment - _EPOCH) // _MILLISECOND


def from_millis(millis: int) -> datetime:
    """The inverse of :func:`to_millis`."""
    return _EPOCH + millis * _MILLISECOND


def _require_timezone(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("must carry a time zone, for example a trailing Z")
    if moment.tzinfo is UTC and moment.microsecond % 1000 == 0:
        return moment  # already what the wire carries: the common case, kept cheap
    utc = moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


Timestamp = Annotated[
    datetime,
    AfterValidator(_require_timezone),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""An aware datetime that travels as the contract's timestamp string."""
