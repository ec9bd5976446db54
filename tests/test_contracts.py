"""The shared models: strict, exact on the wire, and their published schemas current."""

from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from contracts import (
    CommandRejected,
    CommandReply,
    ErrorCode,
    ErrorInfo,
    GenerateToken,
    RotateToken,
    TokenCreated,
    command_adapter,
    grants,
)
from contracts.export import render
from contracts.schemas import json_schemas

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"


def _generate(**fields: object) -> bytes:
    body: dict[str, object] = {
        "type": "GenerateToken",
        "command_id": "c-1",
        "actor": "alice",
        "name": "ci-deploy",
        "scopes": ["entities:read"],
    }
    body.update(fields)
    return orjson.dumps(body)


def _error_fields(payload: bytes) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        GenerateToken.model_validate_json(payload)
    return {".".join(map(str, e["loc"])) for e in caught.value.errors()}


def test_a_valid_command_is_read_from_json() -> None:
    command = command_adapter.validate_json(_generate(expires_at="2030-01-01T00:00:00.000Z"))
    assert isinstance(command, GenerateToken)
    assert command.expires_at is not None
    assert command.expires_at.year == 2030


def test_unknown_fields_are_refused_by_name() -> None:
    assert _error_fields(_generate(colour="red")) == {"colour"}


def test_each_broken_field_is_named() -> None:
    assert _error_fields(_generate(name="-bad")) == {"name"}
    assert _error_fields(_generate(name="x" * 65)) == {"name"}
    assert _error_fields(_generate(scopes=[])) == {"scopes"}
    assert _error_fields(_generate(scopes=["entities:read", "entities:read"])) == {"scopes"}
    assert _error_fields(_generate(scopes=["entities:delete"])) == {"scopes.0"}
    assert _error_fields(_generate(description="d" * 1025)) == {"description"}
    assert _error_fields(_generate(command_id="")) == {"command_id"}
    assert _error_fields(_generate(command_id="é")) == {"command_id"}
    assert _error_fields(_generate(actor="")) == {"actor"}
    assert _error_fields(_generate(expires_at="2030-01-01T00:00:00")) == {"expires_at"}


def test_wrong_types_are_not_coerced() -> None:
    with pytest.raises(ValidationError):
        RotateToken.model_validate_json(
            b'{"type":"RotateToken","command_id":"c","actor":"a","token_id":"t",'
            b'"grace_seconds":"60"}'
        )


def test_grace_is_bounded_to_a_week() -> None:
    base = {"type": "RotateToken", "command_id": "c", "actor": "a", "token_id": "t"}
    RotateToken.model_validate_json(orjson.dumps({**base, "grace_seconds": 604800}))
    with pytest.raises(ValidationError):
        RotateToken.model_validate_json(orjson.dumps({**base, "grace_seconds": 604801}))


def test_reply_leaves_absent_members_out() -> None:
    error = ErrorInfo(code=ErrorCode.NOT_FOUND, message="no token has this id")
    wire = orjson.loads(CommandReply(command_id="c", ok=False, error=error).to_json())
    assert wire == {
        "command_id": "c",
        "ok": False,
        "duplicate": False,
        "error": {"code": "not_found", "message": "no token has this id"},
    }


def test_events_carry_the_common_fields_and_times_with_milliseconds() -> None:
    event = orjson.loads(
        TokenCreated(
            token_id="t",
            actor="alice",
            command_id="c",
            name="n",
            description=None,
            scopes=["entities:read"],
            expires_at=None,
        ).to_json()
    )
    assert event["type"] == "TokenCreated"
    assert event["schema_version"] == 1
    assert event["event_id"]
    assert event["occurred_at"].endswith("Z")
    assert len(event["occurred_at"]) == len("2026-11-28T01:35:49.123Z")


def test_rejection_without_a_token_leaves_token_id_out() -> None:
    event = orjson.loads(
        CommandRejected(
            actor="a", command_type="GenerateToken", code="invalid", message="m"
        ).to_json()
    )
    assert "token_id" not in event
    assert event["command_id"] is None


def test_scope_levels_grant_the_lower_ones() -> None:
    assert grants(["entities:write"], "entities:read")
    assert grants(["entities:admin"], "entities:write")
    assert not grants(["entities:read"], "entities:write")
    assert not grants(["reports:admin"], "entities:read")
    assert not grants(["entities:read"], "entities")


@pytest.mark.parametrize("name", sorted(json_schemas()))
def test_published_schema_matches_the_models(name: str) -> None:
    committed = (SCHEMAS / f"{name}.json").read_text(encoding="utf-8")
    assert committed == render(json_schemas()[name]), (
        f"docs/schemas/{name}.json is stale: run `make schemas`"
    )
