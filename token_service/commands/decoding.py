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
from contracts.commands import LEAK_ERROR
from contracts.token_format import MAX_TOKEN_BODY, decode_json_escapes, find_tokens, mask_tokens_in

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "MAX_PAYLOAD_BYTES",
    "DeadLetter",
    "Invalid",
    "Parsed",
    "open_entry",
    "secrets_in",
]

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_ENVELOPE_BYTES = 2 * MAX_PAYLOAD_BYTES
"""A FastStream legacy JSON envelope larger than this is not parsed (its payload cannot fit)."""
_CHANNEL = re.compile(r"[\x21-\x7e]{1,256}")
_COMMAND_ID = re.compile(r"[\x20-\x7e]{1,128}")


def _printable(value: object, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    # Cut with room for a token's secret part, mask, then cut to the limit: masking a huge
    # value would cost seconds, and a token straddling the limit is still masked whole.
    return mask_tokens_in(text[: limit + MAX_TOKEN_BODY])[:limit]


def _printable_name(raw: bytes, limit: int = 200) -> str:
    # At most 4 bytes a character: never decode more of a huge field name than is shown.
    return _printable(raw[: 4 * (limit + MAX_TOKEN_BODY)].decode("utf-8", "replace"), limit)


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
    holds_secret: bool = False
    """Refused (at least) because a field holds a token: the entry must not stay."""


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


def _tokens_in_text(raw: bytes) -> list[str]:
    text = raw.decode("utf-8", "replace")
    # JSON escapes (``tok\\u005f…``) hide a token from a scan of the raw text, not from
    # whoever reads the entry: look at the text with them decoded too.
    return find_tokens(decode_json_escapes(text), glued=True)


def _too_big_to_parse(envelope: bytes) -> bool:
    # The binary format is sliced, not parsed: only a huge JSON envelope costs to read.
    binary = envelope.startswith(BinaryMessageFormatV1.IDENTITY_HEADER)
    return not binary and len(envelope) > MAX_ENVELOPE_BYTES


def _tokens_in_envelope(raw: bytes) -> list[str]:
    if _too_big_to_parse(raw):
        return []  # a JSON envelope that large is not parsed; the raw scan covers it
    payload, headers = BinaryMessageFormatV1.parse(raw)
    found = _tokens_in_text(payload)
    if isinstance(headers, dict):
        for name, value in headers.items():
            found += _tokens_in_text(f"{name} {value}".encode())
    return found


def secrets_in(fields: dict[bytes, bytes]) -> list[str]:
    """Every well-formed token in an entry: in any field name or value, as written, with
    JSON escapes decoded, and inside a FastStream envelope's body and headers."""
    found = [token for pair in fields.items() for raw in pair for token in _tokens_in_text(raw)]
    if b"__data__" in fields:
        found += _tokens_in_envelope(fields[b"__data__"])
    return list(dict.fromkeys(found))


def _open_envelope(raw: bytes) -> tuple[bytes, str | None] | DeadLetter:
    if _too_big_to_parse(raw):
        # Parsing a huge JSON envelope only to refuse its payload would cost the most.
        return DeadLetter(f"envelope of {len(raw)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    payload, headers = BinaryMessageFormatV1.parse(raw)
    # FastStream's legacy JSON envelope hands back whatever "headers" held.
    reply_to = headers.get("reply_to") if isinstance(headers, dict) else None
    return payload, _valid(_CHANNEL, reply_to)


def _refused_for_a_secret(error: ValidationError) -> bool:
    for item in error.errors(include_url=False, include_input=False):
        if item["type"] == LEAK_ERROR:
            return True
        if any(find_tokens(str(part), glued=True) for part in item["loc"]):
            return True
    return False


def open_entry(fields: dict[bytes, bytes]) -> Parsed | Invalid | DeadLetter:
    """Read one stream entry's fields."""
    faststream_reply_to: str | None = None  # where FastStream's request() listens
    if b"data" in fields:
        payload = fields[b"data"]
    elif b"__data__" in fields:
        opened = _open_envelope(fields[b"__data__"])
        if isinstance(opened, DeadLetter):
            return opened
        payload, faststream_reply_to = opened
    else:
        names = ", ".join(_printable_name(name) for name in fields)
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
            holds_secret=_refused_for_a_secret(exc),
        )
