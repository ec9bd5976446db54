"""Logs are JSON lines, and nothing shaped like a token survives into them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pytest
import structlog
from redis.asyncio import Redis

from contracts.token_format import mint
from tests.conftest import ADMIN, wait_for
from tests.streams import send_raw
from token_service.app import Service
from token_service.commands import pipeline as processor
from token_service.keys import Keys
from token_service.ops.logs import configure_logging, mask_tokens
from token_service.plans import Plan
from token_service.redis.outcomes import Failed, Outcome

COMMAND_FIELDS = ("command_id", "command_type", "actor", "token_id")


@pytest.fixture(autouse=True)
def restore_logging(captured_logs: io.StringIO) -> Iterator[None]:
    """Tests here may point logs elsewhere; later tests must write to the session's sink."""
    yield
    configure_logging("INFO", captured_logs)


def test_processor_masks_tokens_in_nested_values() -> None:
    token = mint()
    lookalike = "tok_" + "A" * 38
    event = mask_tokens(
        None, "info", {"event": f"got {token}", "extra": {"list": [token, lookalike]}}
    )
    assert event == {"event": "got tok_***", "extra": {"list": ["tok_***", "tok_***"]}}


def test_processor_masks_tokens_glued_to_other_text() -> None:
    token = mint()
    event = mask_tokens(None, "info", {"event": f"pasted {token}X and x{token}"})
    assert event == {"event": "pasted tok_***X and xtok_***"}


def test_structlog_and_standard_logging_lines_are_masked_json() -> None:
    sink = io.StringIO()
    configure_logging("INFO", sink)
    token = mint("acme")
    structlog.get_logger("test").info("issued", secret=token)
    logging.getLogger("faststream.test").warning("saw %s", token)
    try:
        raise ValueError(f"bad token {token}")
    except ValueError:
        structlog.get_logger("test").exception("failed")
    lines = sink.getvalue().splitlines()
    assert len(lines) == 3
    records = [orjson.loads(line) for line in lines]
    assert records[0]["secret"] == "acme_***"
    assert records[1]["event"] == "saw acme_***"
    assert "acme_***" in records[2]["exception"]
    assert token not in sink.getvalue()


def _lines(sink: io.StringIO, event: str, command_id: str) -> list[dict[str, Any]]:
    records = [orjson.loads(line) for line in sink.getvalue().splitlines()]
    return [r for r in records if r.get("event") == event and r.get("command_id") == command_id]


async def _sent_and_logged(
    redis: Redis, keys: Keys, sink: io.StringIO, event: str, command_id: str
) -> dict[str, Any]:
    """Send a GenerateToken as a raw entry; the first ``event`` line the service logs of it."""
    await send_raw(redis, keys.commands, data=_generate(command_id))

    async def logged() -> bool:
        return bool(_lines(sink, event, command_id))

    await wait_for(logged)
    return _lines(sink, event, command_id)[0]


def _generate(command_id: str, actor: str = ADMIN) -> dict[str, object]:
    return {
        "type": "GenerateToken",
        "command_id": command_id,
        "actor": actor,
        "name": command_id,
        "scopes": ["entities:read"],
    }


async def test_handled_line_carries_command_fields(
    service: Service, redis: Redis, keys: Keys, captured_logs: io.StringIO
) -> None:
    line = await _sent_and_logged(redis, keys, captured_logs, "command_handled", "log-handled")
    assert line["command_type"] == "GenerateToken"
    assert line["actor"] == ADMIN
    assert line["token_id"]
    assert line["outcome"] == "ok"


async def test_failed_preparation_line_carries_fields_and_masks_the_error(
    service: Service,
    redis: Redis,
    keys: Keys,
    captured_logs: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = mint()

    def broken(*_args: object) -> None:
        raise RuntimeError(f"handler bug near {token}")

    monkeypatch.setattr(processor, "handle", broken)
    line = await _sent_and_logged(
        redis, keys, captured_logs, "command_preparation_failed", "log-broken"
    )
    assert all(name in line for name in COMMAND_FIELDS)
    assert line["command_type"] == "GenerateToken"
    assert line["actor"] == ADMIN
    assert "tok_***" in line["exception"]
    assert token not in captured_logs.getvalue()


async def test_not_applied_line_carries_fields_and_masks_the_error(
    service: Service,
    redis: Redis,
    keys: Keys,
    captured_logs: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = mint()

    async def unavailable(mutations: Sequence[Plan], seen: object = None) -> list[Outcome]:
        return [Failed(RuntimeError(f"redis said no to {token}")) for _ in mutations]

    monkeypatch.setattr(service.store, "apply", unavailable)
    line = await _sent_and_logged(redis, keys, captured_logs, "command_not_applied", "log-failed")
    assert all(name in line for name in COMMAND_FIELDS)
    assert line["command_type"] == "GenerateToken"
    assert line["actor"] == ADMIN
    assert line["error"] == "redis said no to tok_***"
    assert token not in captured_logs.getvalue()
