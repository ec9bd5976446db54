"""Wire timestamps: RFC 3339 in UTC, such as ``2026-11-28T01:35:49.123Z``.

What is read is one exact shape: ``YYYY-MM-DDTHH:MM:SS`` with a capital ``T``, then
optionally ``.`` and exactly three digits of milliseconds, then a capital ``Z``. Epoch
numbers, offsets (even ``+00:00``), a space or lowercase ``t``/``z``, missing seconds and
other fractions are refused, so every program reading the streams sees one form.

The range is what a Python ``datetime`` holds: ``0001-01-01T00:00:00Z`` to
``9999-12-31T23:59:59.999Z``. Year ``0000`` and leap seconds (``:60``) are refused as
out of range. Whatever the input, a refusal is a validation error, never another exception.

What the service writes, :func:`format_timestamp`, always carries the milliseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "TIMESTAMP_PATTERN",
    "Timestamp",
    "format_timestamp",
    "from_millis",
    "parse_timestamp",
    "to_millis",
    "utc_now",
]

TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z$"
"""The shape of every time on the wire, as the JSON Schemas publish it."""

_SHAPE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{3}))?Z"
)
_EXAMPLES = "2026-11-28T01:35:49Z or 2026-11-28T01:35:49.123Z"


def utc_now() -> datetime:
    """The current time, in UTC, cut to whole milliseconds as the wire carries it."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_timestamp(moment: datetime) -> str:
    """Render an aware datetime the way the contract writes times."""
    utc = moment.astimezone(UTC)
    # Not strftime("%Y"), which writes years before 1000 without their leading zeros.
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def to_millis(moment: datetime) -> int:
    """Milliseconds since the epoch, as the gateway lookup stores expiry (exact, no floats)."""
    return (moment - _EPOCH) // _MILLISECOND


def from_millis(millis: int) -> datetime:
    """The inverse of :func:`to_millis`."""
    return _EPOCH + millis * _MILLISECOND


def parse_timestamp(text: str) -> datetime:
    """Read a wire time; raises ``ValueError`` naming what is wrong."""
    shape = _SHAPE.fullmatch(text)
    if shape is None:
        raise ValueError(
            f"must be an RFC 3339 time in UTC such as {_EXAMPLES}"
            " (capital T and Z, seconds required, milliseconds optional)"
        )
    year, month, day, hour, minute, second, millis = shape.groups()
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int(millis or 0) * 1000,
            tzinfo=UTC,
        )
    except ValueError as exc:  # February 30, hour 24, second 60, year 0000
        raise ValueError(f"is not a time that exists ({exc})") from None


def _in_utc(moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError("must carry a time zone, for example a trailing Z")
    if moment.tzinfo is UTC and moment.microsecond % 1000 == 0:
        return moment  # already what the wire carries: the common case, kept cheap
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 has no UTC datetime
        raise ValueError("is out of range once in UTC (years 0001 to 9999)") from None
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _validate(value: object) -> datetime:
    try:
        if isinstance(value, datetime):
            return _in_utc(value)
        if isinstance(value, str):
            return parse_timestamp(value)
    except ValueError as exc:
        raise PydanticCustomError("timestamp", "{reason}", {"reason": str(exc)}) from None
    raise PydanticCustomError("timestamp_type", f"must be a string such as {_EXAMPLES}")


Timestamp = Annotated[
    datetime,
    PlainValidator(_validate),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN}),
]
"""An aware UTC datetime that travels as the contract's timestamp string.

From JSON, only the exact string shape is read; from Python, an aware datetime too
(converted to UTC). Milliseconds are kept and anything finer is cut off."""
