"""Turning a raw ``tokens:commands`` entry into a command, a rejection or a dead letter.

Entries come in two shapes: the contract's plain ``data`` field holding JSON, and
FastStream's publisher envelope in ``__data__`` (binary headers, then the JSON body),
whose ``reply_to`` header names where FastStream's ``request`` waits for the answer.
Nothing here raises on bad input: every entry ends as one of three outcomes,
:class:`Parsed`, :class:`Invalid` (answered ``invalid``) or :class:`Unreadable` (dead-lettered).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from contracts import COMMAND_TYPES, CommandBase, ErrorCode
from contracts.commands import LEAK_ERROR
from contracts.token_format import MAX_TOKEN_BODY, find_tokens, mask_tokens_in
from token_service.plans import Rejection
from token_service.redis.envelopes import (
    MAX_ENVELOPE_BYTES,
    MAX_PAYLOAD_BYTES,
    open_envelope_raw,
    too_big_to_parse,
)

__all__ = [
    "MAX_FIELD_ERRORS",
    "About",
    "Invalid",
    "Parsed",
    "Unreadable",
    "body_digest",
    "open_entry",
]

_CHANNEL = re.compile(r"[\x21-\x7e]{1,256}")
MAX_FIELD_ERRORS = 20
"""At most this many fields at fault are named in a rejection (and one line saying more)."""
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
class About:
    """What is known of a command's entry: enough to answer it, log it and audit it."""

    command_type: str = "unknown"
    command_id: str | None = None
    actor: str = "unknown"
    token_id: str | None = None
    reply_channels: tuple[str, ...] = ()
    body: str = ""
    """A digest of every field but ``reply_to``: one command id, one body."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An entry that cannot be read as a command at all: it goes to the dead letters."""

    reason: str
    reply_channels: tuple[str, ...] = ()
    command_id: str | None = None
    """Read from an oversized command, so that its sender can match the answer."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """A command of a known type whose fields break the contract."""

    about: About
    rejection: Rejection
    holds_secret: bool = False
    """Refused (at least) because a field holds a token: the entry must not stay."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """A well-formed command, and every channel that waits for its reply."""

    command: CommandBase
    about: About


def _valid(pattern: re.Pattern[str], value: Any) -> str | None:
    # Only a well-shaped value that holds no token may become a key, an event or a channel.
    if isinstance(value, str) and pattern.fullmatch(value) and not find_tokens(value, glued=True):
        return value
    return None


def _field_errors(error: ValidationError) -> dict[str, str]:
    # A fixed size whatever the input: a rejection is remembered and sent back.
    fields: dict[str, str] = {}
    items = error.errors(include_url=False, include_input=False)
    for item in items:
        if len(fields) == MAX_FIELD_ERRORS:
            fields["..."] = f"{len(items) - MAX_FIELD_ERRORS} more errors not listed"
            break
        where = ".".join(str(part) for part in item["loc"]) or "command"
        fields.setdefault(_printable(where, 100), _printable(item["msg"]))
    return fields


def _member_of_oversized(payload: bytes, name: bytes, pattern: re.Pattern[str]) -> str | None:
    # Too big to parse, but its sender should hear why: look for the member near the start.
    found = re.search(
        rb'"' + name + rb'"\s*:\s*"([\x20\x21\x23-\x5b\x5d-\x7e]{1,256})"',
        payload[:MAX_PAYLOAD_BYTES],
    )
    return _valid(pattern, found.group(1).decode()) if found else None


def _channels(*candidates: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for c in candidates if c))


def _open_envelope(raw: bytes) -> tuple[bytes, str | None] | Unreadable:
    if too_big_to_parse(raw):
        # Parsing a huge JSON envelope only to refuse its payload would cost the most.
        return Unreadable(f"envelope of {len(raw)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    payload, headers = open_envelope_raw(raw)
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


def body_digest(fields: dict[str, Any]) -> str:
    """The digest of a command's fields but ``reply_to``, whatever their order."""
    body = {name: value for name, value in fields.items() if name != "reply_to"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


_ADDED_SINCE_2_0 = frozenset({"allowed_cidrs"})
"""Optional fields added after version 2.0: left out of the body when unset, so that a
command's digest (remembered with its outcome) is the same as before they existed."""


def _about(command: CommandBase, reply_channels: tuple[str, ...]) -> About:
    fields = command.model_dump(mode="json")
    for name in _ADDED_SINCE_2_0 & fields.keys():
        if fields[name] is None:
            del fields[name]
    return About(
        command_type=type(command).__name__,
        command_id=command.command_id,
        actor=command.actor,
        token_id=getattr(command, "token_id", None),
        reply_channels=reply_channels,
        body=body_digest(fields),
    )


def _invalid(
    model: type[CommandBase],
    body: dict[str, Any],
    payload: bytes,
    channels: tuple[str, ...],
    error: ValidationError,
) -> Invalid:
    actor = body.get("actor")
    about = About(
        command_type=model.__name__,
        command_id=_valid(_COMMAND_ID, body.get("command_id")),
        actor=_printable(actor, 256) if isinstance(actor, str) and actor else "unknown",
        reply_channels=channels,
        body=_raw_digest(body, payload),
    )
    rejection = Rejection(
        ErrorCode.INVALID, "the command breaks the contract", _field_errors(error)
    )
    return Invalid(about, rejection, holds_secret=_refused_for_a_secret(error))


def _raw_digest(body: dict[str, Any], payload: bytes) -> str:
    try:
        return body_digest(body)
    except Exception:  # too deep to encode again, say: the payload as written stands in
        return hashlib.sha256(payload).hexdigest()[:32]


def _payload(fields: dict[bytes, bytes]) -> tuple[bytes, str | None] | Unreadable:
    if b"data" in fields:
        return fields[b"data"], None
    if b"__data__" in fields:
        return _open_envelope(fields[b"__data__"])
    names = ", ".join(_printable_name(name) for name in fields)
    return Unreadable(f"no 'data' field (fields: {names})")


def open_entry(fields: dict[bytes, bytes]) -> Parsed | Invalid | Unreadable:
    """Read one stream entry's fields."""
    opened = _payload(fields)
    if isinstance(opened, Unreadable):
        return opened
    payload, faststream_reply_to = opened  # where FastStream's request() listens, if it did
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Unreadable(
            f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}",
            _channels(_member_of_oversized(payload, b"reply_to", _CHANNEL), faststream_reply_to),
            _member_of_oversized(payload, b"command_id", _COMMAND_ID),
        )
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return Unreadable(f"undecodable: not UTF-8 JSON ({exc})", _channels(faststream_reply_to))
    if not isinstance(body, dict):
        return Unreadable("not a JSON object", _channels(faststream_reply_to))
    reply_channels = _channels(_valid(_CHANNEL, body.get("reply_to")), faststream_reply_to)
    command_type = body.get("type")
    model = COMMAND_TYPES.get(command_type) if isinstance(command_type, str) else None
    if model is None:
        return Unreadable(f"unknown command type {_printable(command_type)}", reply_channels)
    try:
        command = model.model_validate_json(payload)
    except ValidationError as exc:
        return _invalid(model, body, payload, reply_channels, exc)
    return Parsed(command, _about(command, reply_channels))
