"""Reading ``TokenUsed`` entries fast, without giving up any of the contract's strictness.

Gateways write events in one canonical shape (every field present, times with
milliseconds and ``Z``); those are checked here by hand, which is several times faster
than full model validation. Anything else, valid or not, goes through the pydantic
model, so what is accepted and the reasons for refusing are exactly the model's.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

import orjson
from pydantic import ValidationError

from contracts import TokenUsed, format_timestamp, from_millis, to_millis

__all__ = ["HOUR_MS", "Fold", "read_usage"]

HOUR_MS = 3_600_000
_DAY_MS = 24 * HOUR_MS
_FIELDS = frozenset(TokenUsed.model_fields)
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_TOKEN_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")

Fold = list[str]
"""[event id, hour bucket, token id, used_at ms, count, day], as the fold script takes it."""


@lru_cache(maxsize=64)
def _day(day_number: int) -> str:
    return format_timestamp(from_millis(day_number * _DAY_MS))[:10]


def _fold(event_id: str, occurred_ms: int, token_id: str, used_ms: int, count: int) -> Fold:
    bucket = str(occurred_ms // HOUR_MS)
    return [event_id, bucket, token_id, str(used_ms), str(count), _day(used_ms // _DAY_MS)]


def _canonical(body: object) -> Fold | None:
    if type(body) is not dict or body.keys() != _FIELDS:
        return None
    count, used_at, occurred_at = body["count"], body["used_at"], body["occurred_at"]
    gateway, token_id = body["gateway"], body["token_id"]
    if (
        body["type"] != "TokenUsed"
        or type(body["schema_version"]) is not int
        or body["schema_version"] != 1
        or type(body["event_id"]) is not str
        or type(body["actor"]) is not str
        or not (body["command_id"] is None or type(body["command_id"]) is str)
        or type(count) is not int
        or not 1 <= count <= 1_000_000_000
        or type(gateway) is not str
        or not 1 <= len(gateway) <= 256
        or type(token_id) is not str
        or not _TOKEN_ID.fullmatch(token_id)
        or type(used_at) is not str
        or not _TIME.fullmatch(used_at)
        or type(occurred_at) is not str
        or not _TIME.fullmatch(occurred_at)
    ):
        return None
    try:
        used_ms = to_millis(datetime.fromisoformat(used_at))
        occurred_ms = to_millis(datetime.fromisoformat(occurred_at))
    except ValueError:  # a date that does not exist, such as February 30
        return None
    return _fold(body["event_id"], occurred_ms, token_id, used_ms, count)


def read_usage(raw: bytes) -> Fold | str:
    """What to fold for one entry's ``data``, or why it cannot be folded."""
    try:
        fold = _canonical(orjson.loads(raw))
    except orjson.JSONDecodeError:
        fold = None
    if fold is not None:
        return fold
    try:
        event = TokenUsed.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "data"
        return f"not a valid event: {where}: {first['msg']}"[:300]
    return _fold(
        event.event_id,
        to_millis(event.occurred_at),
        event.token_id,
        to_millis(event.used_at),
        event.count,
    )
