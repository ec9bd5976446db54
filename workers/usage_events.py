"""Reading ``TokenUsed`` entries fast, without giving up any of the contract's strictness.

Gateways write events in one canonical shape (every field present, times with
milliseconds and ``Z``); those are checked here by hand, which is several times faster
than full model validation. Anything else, valid or not, goes through the pydantic
model, so what is accepted and the reasons for refusing are exactly the model's.

What the model cannot know is checked next (:func:`judge`), against the worker's clock
and the token id: ``used_at`` at most ``AUDIT_USAGE_SKEW_SECONDS`` ahead of the worker's
clock and not before the token's creation (a token id is a ULID, whose first 10
characters are its creation time in ms). A time outside that range would show as the
token's last use, far in the past or stuck in the future. A token id that is no ULID
names no token the service issued: such an event is skipped, as Redis would skip it.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

import orjson
from pydantic import ValidationError
from ulid import ULID

from contracts import TokenUsed, format_timestamp, from_millis, to_millis

__all__ = ["HOUR_MS", "SKIP", "Fold", "Skip", "Use", "judge", "read_usage"]

HOUR_MS = 3_600_000
_DAY_MS = 24 * HOUR_MS
_SEQUENCED = frozenset(TokenUsed.model_fields)
_FIELDS = _SEQUENCED - {"reporter", "sequence"}
_REPORTER = re.compile(r"[0-9A-Za-z_.:-]{1,64}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_TOKEN_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_MAX_EVENT_ID = 128

Fold = list[str]
"""[event id, token id, used_at ms, count, day, reporter, sequence], as the fold function
takes it (reporter and sequence empty when the gateway sent none)."""


class Use(NamedTuple):
    """What one valid ``TokenUsed`` says."""

    event_id: str
    token_id: str
    used_ms: int
    uses: int
    reporter: str = ""
    sequence: int = 0


class Skip:
    """An event for a token that cannot exist: acknowledged, counted, not folded."""


SKIP = Skip()


@lru_cache(maxsize=64)
def _day(day_number: int) -> str:
    return format_timestamp(from_millis(day_number * _DAY_MS))[:10]


@lru_cache(maxsize=4096)
def _created_ms(token_id: str) -> int | None:
    """When the token was created, from its ULID id; ``None`` when it is no ULID."""
    try:
        return ULID.from_str(token_id).milliseconds
    except ValueError:
        return None


def _sequenced(body: dict[str, object]) -> tuple[str, int] | None:
    reporter, sequence = body["reporter"], body["sequence"]
    if type(reporter) is not str or not _REPORTER.fullmatch(reporter):
        return None
    if type(sequence) is not int or not 1 <= sequence <= 2**46:
        return None
    return reporter, sequence


def _canonical(body: object) -> Use | None:
    if type(body) is not dict:
        return None
    keys = body.keys()
    sequenced = _sequenced(body) if keys == _SEQUENCED else ("", 0)
    if sequenced is None or (keys != _FIELDS and keys != _SEQUENCED):
        return None
    count, used_at, event_id = body["count"], body["used_at"], body["event_id"]
    gateway, token_id, occurred_at = body["gateway"], body["token_id"], body["occurred_at"]
    if (
        body["type"] != "TokenUsed"
        or type(body["schema_version"]) is not int
        or body["schema_version"] != 1
        or type(event_id) is not str
        or not 1 <= len(event_id) <= _MAX_EVENT_ID
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
        datetime.fromisoformat(occurred_at)
    except ValueError:  # a date that does not exist, such as February 30
        return None
    return Use(event_id, token_id, used_ms, count, *sequenced)


def read_usage(raw: bytes) -> Use | str:
    """What one entry's ``data`` says, or why it is not a valid ``TokenUsed``."""
    try:
        use = _canonical(orjson.loads(raw))
    except orjson.JSONDecodeError:
        use = None
    if use is not None:
        return use
    try:
        event = TokenUsed.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "data"
        return f"not a valid event: {where}: {first['msg']}"[:300]
    return Use(
        event.event_id,
        event.token_id,
        to_millis(event.used_at),
        event.count,
        event.reporter or "",
        event.sequence or 0,
    )


def judge(use: Use, now_ms: int, skew_ms: int) -> Fold | Skip | str:
    """What to fold for a valid event, :data:`SKIP`, or why it cannot be folded."""
    if use.used_ms > now_ms + skew_ms:
        return f"used_at is more than {skew_ms // 1000} s ahead of the worker's clock"
    created_ms = _created_ms(use.token_id)
    if created_ms is None:
        return SKIP
    if use.used_ms < created_ms:
        return "used_at is before the token was created"
    day = _day(use.used_ms // _DAY_MS)
    sequence = str(use.sequence) if use.reporter else ""
    return [
        use.event_id,
        use.token_id,
        str(use.used_ms),
        str(use.uses),
        day,
        use.reporter,
        sequence,
    ]
