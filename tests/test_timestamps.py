"""Every time on the wire is one exact RFC 3339 shape in UTC, and nothing else is read."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from contracts import (
    TIMESTAMP_PATTERN,
    CommandRejected,
    DeadLetter,
    GenerateToken,
    TokenCreated,
    TokenExpired,
    TokenRevoked,
    TokenRotated,
    TokenStatus,
    TokenUpdated,
    TokenUsed,
    TokenView,
    format_timestamp,
)
from contracts.schemas import MESSAGE_MODELS, json_schemas
from workers.usage_events import read_usage

MOMENT = datetime(2026, 11, 28, 1, 35, 49, 123000, tzinfo=UTC)

SAMPLES: dict[type[BaseModel], BaseModel] = {
    GenerateToken: GenerateToken(
        command_id="c-1", actor="alice", name="n", scopes=["entities:read"], expires_at=MOMENT
    ),
    TokenView: TokenView(
        id="t",
        name="n",
        scopes=["entities:read"],
        status=TokenStatus.ACTIVE,
        created_at=MOMENT,
        created_by="alice",
        expires_at=MOMENT,
        revoked_at=MOMENT,
        rotated_at=MOMENT,
        last_used_at=MOMENT,
        hint="tok_abcd",
    ),
    TokenCreated: TokenCreated(
        token_id="t", actor="a", name="n", description=None, scopes=[], expires_at=MOMENT
    ),
    TokenRevoked: TokenRevoked(token_id="t", actor="a", reason=None),
    TokenRotated: TokenRotated(token_id="t", actor="a", previous_valid_until=MOMENT),
    TokenUpdated: TokenUpdated(token_id="t", actor="a"),
    TokenExpired: TokenExpired(token_id="t", actor="token-service"),
    CommandRejected: CommandRejected(actor="a", command_type="X", code="invalid", message="m"),
    TokenUsed: TokenUsed(token_id="t", actor="gw", used_at=MOMENT, count=1, gateway="gw"),
    DeadLetter: DeadLetter(stream="s", entry_id="1-0", reason="r", fields={}, consumer="c"),
}

ACCEPTED = {
    "2026-11-28T01:35:49Z": datetime(2026, 11, 28, 1, 35, 49, tzinfo=UTC),
    "2026-11-28T01:35:49.123Z": MOMENT,
    "2026-11-28T01:35:49.000Z": datetime(2026, 11, 28, 1, 35, 49, tzinfo=UTC),
    "0001-01-01T00:00:00Z": datetime(1, 1, 1, tzinfo=UTC),
    "9999-12-31T23:59:59.999Z": datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    "2028-02-29T23:59:59Z": datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC),
}

WRONG_SHAPE: list[object] = [
    "1796002549",  # epoch seconds, as a string
    1796002549,  # and as numbers
    1796002549.5,
    10**30,
    True,
    "",
    "2026-11-28t01:35:49Z",
    "2026-11-28T01:35:49z",
    "2026-11-28t01:35:49z",
    "2026-11-28 01:35:49Z",
    "2026-11-28_01:35:49Z",
    "2026-11-28T01:35Z",  # no seconds
    "2026-11-28T01Z",
    "2026-11-28",
    "2026-11-28T01:35:49",  # no zone
    "2026-11-28T01:35:49+00:00",
    "2026-11-28T01:35:49.123+00:00",
    "2026-11-28T01:35:49-00:00",
    "2026-11-28T02:35:49+01:00",
    "9999-12-31T23:59:59-01:00",  # overflowed when turned into UTC
    "0001-01-01T00:00:00+01:00",
    "2026-11-28T01:35:49.1Z",  # milliseconds are three digits
    "2026-11-28T01:35:49.12Z",
    "2026-11-28T01:35:49.123456Z",
    "2026-11-28T01:35:49,123Z",
    "2026-11-28T01:35:49.Z",
    "20261128T013549Z",
    "+2026-11-28T01:35:49Z",
    "-0001-01-01T00:00:00Z",
    "99999-01-01T00:00:00Z",
    " 2026-11-28T01:35:49Z",
    "2026-11-28T01:35:49Z\n",
    "\uff12\uff10\uff12\uff16-11-28T01:35:49Z",  # fullwidth digits
    "\u0662\u0660\u0662\u0666-11-28T01:35:49Z",  # Arabic-Indic digits
    "2026-1-28T01:35:49Z",
    "Sat, 28 Nov 2026 01:35:49 GMT",
    "now",
    ["2026-11-28T01:35:49Z"],
    {"at": "2026-11-28T01:35:49Z"},
]

NOT_A_TIME = [
    "0000-01-01T00:00:00Z",  # RFC 3339 has year 0000; no datetime does
    "2026-02-30T00:00:00Z",
    "2027-02-29T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-11-00T00:00:00Z",
    "2026-11-28T24:00:00Z",
    "2026-11-28T01:60:00Z",
    "2016-12-31T23:59:60Z",  # a leap second
    "9999-99-99T99:99:99.999Z",
]


def _time_fields(model: type[BaseModel]) -> list[str]:
    properties = model.model_json_schema(mode="validation")["properties"]
    return sorted(
        name
        for name, spec in properties.items()
        if any(option.get("format") == "date-time" for option in spec.get("anyOf", [spec]))
    )


# Near misses with an offset: what once overflowed when turned into UTC.
_WITH_OFFSET = (
    r"\A[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9][+-][0-2][0-9]:00\Z"
)

TIME_FIELDS = [(model, name) for model in MESSAGE_MODELS for name in _time_fields(model)]


def _wire(model: type[BaseModel], field: str, value: object) -> bytes:
    body: dict[str, Any] = orjson.loads(SAMPLES[model].model_dump_json())
    body[field] = value
    return json.dumps(body).encode()  # orjson refuses integers past 64 bits


def _refusal(model: type[BaseModel], field: str, value: object) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(_wire(model, field, value))
    (error,) = caught.value.errors()
    assert error["loc"] == (field,), value
    return str(error["msg"])


def test_every_time_field_of_every_message_is_covered() -> None:
    assert {model.__name__ for model, _ in TIME_FIELDS} == {m.__name__ for m in SAMPLES}
    assert ("TokenUsed", "used_at") in {(m.__name__, f) for m, f in TIME_FIELDS}
    assert ("TokenUsed", "occurred_at") in {(m.__name__, f) for m, f in TIME_FIELDS}


@pytest.mark.parametrize(("model", "field"), TIME_FIELDS, ids=lambda p: getattr(p, "__name__", p))
def test_times_in_the_contracts_shape_are_read(model: type[BaseModel], field: str) -> None:
    for text, moment in ACCEPTED.items():
        message = model.model_validate_json(_wire(model, field, text))
        assert getattr(message, field) == moment


@pytest.mark.parametrize(("model", "field"), TIME_FIELDS, ids=lambda p: getattr(p, "__name__", p))
def test_any_other_shape_is_refused_with_an_error_at_the_field(
    model: type[BaseModel], field: str
) -> None:
    for value in WRONG_SHAPE:
        assert "2026-11-28T01:35:49Z" in _refusal(model, field, value), value


@pytest.mark.parametrize(("model", "field"), TIME_FIELDS, ids=lambda p: getattr(p, "__name__", p))
def test_times_that_do_not_exist_are_refused_as_such(model: type[BaseModel], field: str) -> None:
    for value in NOT_A_TIME:
        assert _refusal(model, field, value).startswith("is not a time that exists"), value


def test_aware_datetimes_from_python_are_taken_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    command = GenerateToken(
        command_id="c",
        actor="a",
        name="n",
        scopes=["entities:read"],
        expires_at=datetime(2026, 11, 28, 2, 35, 49, 123456, tzinfo=paris),
    )
    assert command.expires_at == MOMENT
    assert command.expires_at is not None
    assert command.expires_at.tzinfo is UTC


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 28, 1, 35, 49),  # naive: no zone
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),  # past 9999 in UTC
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),  # before year 1 in UTC
    ],
)
def test_datetimes_without_a_utc_equivalent_are_validation_errors(moment: datetime) -> None:
    with pytest.raises(ValidationError) as caught:
        TokenUsed(token_id="t", actor="gw", used_at=moment, count=1, gateway="gw")
    assert [e["loc"] for e in caught.value.errors()] == [("used_at",)]


@given(
    st.text(max_size=40)
    | st.from_regex(TIMESTAMP_PATTERN.replace("$", r"\Z"))
    | st.from_regex(_WITH_OFFSET)
)
def test_no_text_raises_anything_but_a_validation_error(text: str) -> None:
    with contextlib.suppress(ValidationError):
        TokenUsed.model_validate_json(_wire(TokenUsed, "used_at", text))


@given(
    st.datetimes(
        timezones=st.builds(timezone, st.timedeltas(-timedelta(hours=23), timedelta(hours=23)))
    )
)
def test_no_datetime_raises_anything_but_a_validation_error(moment: datetime) -> None:
    with contextlib.suppress(ValidationError):
        TokenUsed(token_id="t", actor="gw", used_at=moment, count=1, gateway="gw")


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z"])
def test_the_ends_of_the_range_are_written_back_as_read(text: str) -> None:
    used = TokenUsed.model_validate_json(_wire(TokenUsed, "used_at", text))
    assert orjson.loads(used.model_dump_json())["used_at"] == text


def test_the_service_writes_times_with_milliseconds_as_before() -> None:
    assert format_timestamp(MOMENT) == "2026-11-28T01:35:49.123Z"
    assert format_timestamp(datetime(2026, 11, 28, 1, 35, 49, tzinfo=UTC)) == (
        "2026-11-28T01:35:49.000Z"
    )


def test_published_schemas_give_the_pattern_for_every_time() -> None:
    for model, field in TIME_FIELDS:
        spec = json_schemas()[model.__name__]["properties"][field]
        (option,) = [o for o in spec.get("anyOf", [spec]) if o.get("type") == "string"]
        assert option["pattern"] == TIMESTAMP_PATTERN
    pattern = re.compile(TIMESTAMP_PATTERN, re.ASCII)
    assert all(pattern.search(text) for text in ACCEPTED)
    assert not any(pattern.search(v) for v in WRONG_SHAPE if isinstance(v, str) and "\n" not in v)


def test_usage_in_another_shape_is_not_counted() -> None:
    body = orjson.loads(_wire(TokenUsed, "used_at", "2026-11-28T01:35:49+00:00"))
    outcome = read_usage(orjson.dumps(body))
    assert isinstance(outcome, str)
    assert outcome.startswith("not a valid event: used_at:")
