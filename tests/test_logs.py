"""Logs are JSON lines, and nothing shaped like a token survives into them."""

from __future__ import annotations

import io
import logging

import orjson
import structlog

from contracts.token_format import mint
from token_service.logs import configure_logging, mask_tokens


def test_processor_masks_tokens_in_nested_values() -> None:
    token = mint()
    lookalike = "tok_" + "A" * 38
    event = mask_tokens(
        None, "info", {"event": f"got {token}", "extra": {"list": [token, lookalike]}}
    )
    assert event == {"event": "got tok_***", "extra": {"list": ["tok_***", "tok_***"]}}


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
