"""Turning a raw ``tokens:commands`` entry into a command, a rejection or a dead letter.

Entries come in two shapes: the contract's plain ``data`` field holding JSON, and
FastStream's publisher envelope in ``__data__`` (binary headers, then the JSON body),
whose ``reply_to`` header names where FastStream's ``request`` waits for the answer.
Nothing here raises on bad input: every entry ends as one of the three outcomes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from faststream.redis.parser import BinaryMessageFormatV1
from pydantic import ValidationError

from contracts import COMMAND_TYPES, CommandBase
from contracts.token_format import find_tokens, mask_tokens_in

__all__ = ["MAX_PAYLOAD_BYTES", "DeadLetter", "Invalid", "Parsed", "holds_token", "open_entry"]

MAX_PAYLOAD_BYTES = 64 * 1024
_CHANNEL = re.compile(r"[\x21-\x7e]{1,256}")
_COMMAND_ID = re.compile(r"[\x20-\x7e]{1,128}")


def _printable(value: object, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    return mask_tokens_in(text)[:limit]  # masked before the cut, which could halve a token


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry that cannot be read as a command at all; kept for operators."""

    reason: str
    reply_channels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Invalid:
    """A command of a known type whose fields break the contract."""

    command_type: str
    command_id: str | None
    actor: str
    reply_channels: tuple[str, ...]
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class Parsed:
    """A well-formed command, and every channel that waits for its reply."""

    command: CommandBase
    reply_channels: tuple[str, ...] = ()


def _valid(pattern: re.Pattern[str], value: Any) -> str | None:
    # Only a well-shaped value that holds no token may become a key, an event or a channel.
    if isinstance(value, str) and pattern.fullmatch(value) and not find_tokens(value, glued=True):
        return value
    return None


def _field_errors(error: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or "command"
        fields.setdefault(_printable(where, 100), _printable(item["msg"]))
    return fields


def _channels(*candidates: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for c in candidates if c))


def _holds_token(raw: bytes) -> bool:
    if find_tokens(raw.decode("utf-8", "replace"), glued=True):
        return True
    if b"\\u" not in raw:
        return False
    # JSON escapes (``tok_\\u0041…``) hide a token from a scan of the raw text, not from
    # whoever reads the entry: look again at the JSON written without them.
    try:
        plain = orjson.dumps(orjson.loads(raw))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return False
    return bool(find_tokens(plain.decode(), glued=True))


def holds_token(fields: dict[bytes, bytes]) -> bool:
    """True when any field name or value of an entry holds a well-formed token."""
    return any(_holds_token(raw) for pair in fields.items() for raw in pair)


def open_entry(fields: dict[bytes, bytes]) -> Parsed | Invalid | DeadLetter:
    """Read one stream entry's fields."""
    faststream_reply_to: str | None = None  # where FastStream's request() listens
    if b"data" in fields:
        payload = fields[b"data"]
    elif b"__data__" in fields:
        payload, headers = BinaryMessageFormatV1.parse(fields[b"__data__"])
        # FastStream's legacy JSON envelope hands back whatever "headers" held.
        reply_to = headers.get("reply_to") if isinstance(headers, dict) else None
        faststream_reply_to = _valid(_CHANNEL, reply_to)
    else:
        names = ", ".join(_printable(name.decode("utf-8", "replace")) for name in fields)
        return DeadLetter(f"no 'data' field (fields: {names})")
    if len(payload) > MAX_PAYLOAD_BYTES:
        return DeadLetter(
            f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}",
            _channels(faststream_reply_to),
        )
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return DeadLetter(f"undecodable: not UTF-8 JSON ({exc})", _channels(faststream_reply_to))
    if not isinstance(body, dict):
        return DeadLetter("not a JSON object", _channels(faststream_reply_to))
    reply_channels = _channels(_valid(_CHANNEL, body.get("reply_to")), faststream_reply_to)
    command_type = body.get("type")
    model = COMMAND_TYPES.get(command_type) if isinstance(command_type, str) else None
    if model is None:
        return DeadLetter(f"unknown command type {_printable(command_type)}", reply_channels)
    try:
        return Parsed(model.model_validate_json(payload), reply_channels)
    except ValidationError as exc:
        actor = body.get("actor")
        return Invalid(
            command_type=model.__name__,
            command_id=_valid(_COMMAND_ID, body.get("command_id")),
            actor=_printable(actor, 256) if isinstance(actor, str) and actor else "unknown",
            reply_channels=reply_channels,
            fields=_field_errors(exc),
        )
