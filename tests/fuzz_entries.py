"""What the command fuzz writes on ``tokens:commands``: command templates with placeholders,
the hostile cases tried every run, the valid commands written between bad entries, and what
each entry is owed once written (a reply on its ``reply_to``, or a dead letter or event)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from faststream.redis.parser import BinaryMessageFormatV1

from contracts.token_format import mint
from tests.conftest import ADMIN
from token_service.redis.envelopes import MAX_PAYLOAD_BYTES

REPLY = b"@REPLY@"  # replaced by a channel of the entry's own
CMD_ID = b"@CMDID@"  # replaced by a command id of the entry's own
TOKEN = b"@TOKEN@"  # replaced by a fresh, never issued token

Fields = dict[bytes, bytes]
Probe = tuple[str, Fields]


def data_field(body: object) -> Fields:
    """``body`` as JSON in the ``data`` field."""
    return {b"data": orjson.dumps(body)}


def _generate() -> dict[str, Any]:
    return {
        "type": "GenerateToken",
        "command_id": CMD_ID.decode(),
        "actor": ADMIN,
        "name": "fz-" + CMD_ID.decode(),
        "scopes": ["entities:read"],
        "reply_to": REPLY.decode(),
    }


def _revoke() -> dict[str, Any]:
    return {
        "type": "RevokeToken",
        "command_id": CMD_ID.decode(),
        "actor": ADMIN,
        "token_id": "01NOSUCHTOKEN000000000000",
        "reason": "fuzz",
        "reply_to": REPLY.decode(),
    }


def _rotate() -> dict[str, Any]:
    return {
        "type": "RotateToken",
        "command_id": CMD_ID.decode(),
        "actor": ADMIN,
        "token_id": "01NOSUCHTOKEN000000000000",
        "grace_seconds": 5,
        "reply_to": REPLY.decode(),
    }


BASES: dict[str, Callable[[], dict[str, Any]]] = {
    "GenerateToken": _generate,
    "RevokeToken": _revoke,
    "RotateToken": _rotate,
}
REQUIRED = {
    "GenerateToken": ["type", "command_id", "actor", "name", "scopes"],
    "RevokeToken": ["type", "command_id", "actor", "token_id"],
    "RotateToken": ["type", "command_id", "actor", "token_id"],
}
ALL_FIELDS = {name for base in BASES.values() for name in base()} | {
    "description",
    "expires_at",
}


LUA = [
    "'); redis.call('FLUSHALL') --",
    "]] redis.call('DEL', KEYS[1]) [[",
    "\"..redis.call('CONFIG','SET','dir','/tmp')..\"",
    "*",
    "tokens:admins",
    "../../*",
    "return 1",
]


def command_with(base: str, **changes: object) -> Fields:
    return data_field({**BASES[base](), **changes})


KNOWN_HOSTILE: list[Probe] = [
    # FastStream's legacy JSON envelope with headers that are not an object
    ("envelope", {b"__data__": orjson.dumps({"data": "{not json", "headers": None})}),
    ("envelope", {b"__data__": orjson.dumps({"data": "{}", "headers": [1, 2]})}),
    ("envelope", {b"__data__": orjson.dumps({"data": "[]", "headers": {"reply_to": 5}})}),
    ("envelope", {b"__data__": orjson.dumps({"data": "{", "headers": {"reply_to": "@REPLY@"}})}),
    ("deep-nesting", {b"data": b"[" * 10_000 + b"]" * 10_000}),
    (
        "deep-nesting",
        {b"data": b'{"type":"GenerateToken","x":' + b"[" * 10_000 + b"]" * 10_000 + b"}"},
    ),
    ("oversized", {b"data": b"x" * 1_000_000}),
    ("oversized", command_with("GenerateToken", description="d" * 1_000_000)),
    ("malicious", command_with("GenerateToken", actor=LUA[0])),
    ("malicious", command_with("RevokeToken", token_id="*")),
    ("malicious", command_with("RevokeToken")),  # a well-formed command for a token that never was
    ("malicious", command_with("GenerateToken", scopes=["entities:read"] * 100_000)),
    ("malicious", {b"data": orjson.dumps(list(range(200_000)))}),
    ("control-chars", command_with("GenerateToken", actor="ali\x00ce", name="a\nb")),
    ("invalid-utf8", {b"data": b'{"type":"GenerateToken","actor":"\xff\xfe"}'}),
    ("no-data-field", {b"\xff\x00": b"\xfe"}),
    ("pasted-token", command_with("RevokeToken", reason="leaked @TOKEN@X")),
    ("pasted-token", command_with("GenerateToken", description="x@TOKEN@")),
    ("pasted-token", {b"data": command_with("RevokeToken")[b"data"], b"note": b"@TOKEN@"}),
]
"""Cases that must be tried every run, whatever Hypothesis draws."""


def substitute(fields: Fields, channel: str, command_id: str) -> Fields:
    """The entry with its placeholders filled in: channel, command id, a fresh token."""

    def fill(raw: bytes) -> bytes:
        raw = raw.replace(REPLY, channel.encode()).replace(CMD_ID, command_id.encode())
        return raw.replace(TOKEN, mint().encode())

    return {fill(name): fill(value) for name, value in fields.items()}


def _payload_and_header_reply(fields: Fields) -> tuple[bytes | None, object]:
    if b"data" in fields:
        return fields[b"data"], None
    if b"__data__" in fields:
        payload, headers = BinaryMessageFormatV1.parse(fields[b"__data__"])
        return payload, headers.get("reply_to") if isinstance(headers, dict) else None
    return None, None


def what_is_owed(fields: Fields, channel: str, command_id: str) -> tuple[bool, bool]:
    """Whether the entry's reply_to is usable (a reply is owed) and it carries our id."""
    payload, header_reply = _payload_and_header_reply(fields)
    if payload is None:
        return False, False
    by_header = header_reply == channel
    if len(payload) > MAX_PAYLOAD_BYTES:
        return by_header, False
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return by_header, False
    if not isinstance(body, dict):
        return by_header, False
    return by_header or body.get("reply_to") == channel, body.get("command_id") == command_id


@dataclass
class Sent:
    """One entry as written, and what it is owed."""

    kind: str
    entry_id: str
    channel: str
    command_id: str
    reply_owed: bool
    carries_id: bool
    holds_token: bool


class Planned(NamedTuple):
    """One entry to write: a bad one (its kind) or a valid command (``valid:<type>``)."""

    kind: str
    fields: Fields
    channel: str
    command_id: str


def _valid_command(n: int, live_tokens: list[str], channels: str) -> Planned:
    """A valid command: the revocation of a token an earlier round made (taken off
    ``live_tokens``), or a new token."""
    ok_nonce = uuid.uuid4().hex[:12]
    if live_tokens and n % 4 == 2:
        command: dict[str, Any] = {
            "type": "RevokeToken",
            "token_id": live_tokens.pop(),
            "reason": "fuzz round over",
        }
    else:
        command = {
            "type": "GenerateToken",
            "name": f"ok-{ok_nonce}",
            "scopes": ["entities:read"],
        }
    command |= {
        "command_id": f"ok-{ok_nonce}",
        "actor": ADMIN,
        "reply_to": f"{channels}{ok_nonce}",
    }
    return Planned(
        "valid:" + command["type"], data_field(command), f"{channels}{ok_nonce}", f"ok-{ok_nonce}"
    )


def bad_entries_with_valid_commands_between(
    batch: list[Probe], live_tokens: list[str], channels: str
) -> list[Planned]:
    """Each bad entry with a channel (under ``channels``) and command id of its own; a valid
    command after every other one."""
    plan: list[Planned] = []
    for n, (kind, template) in enumerate(batch):
        nonce = uuid.uuid4().hex[:12]
        channel, command_id = f"{channels}{nonce}", f"fz-c-{nonce}"
        plan.append(Planned(kind, substitute(template, channel, command_id), channel, command_id))
        if n % 2 == 0:  # a valid command between bad ones
            plan.append(_valid_command(n, live_tokens, channels))
    return plan


def sort_out(
    plan: list[Planned], ids: list[str], kinds: Counter[str]
) -> tuple[list[Sent], list[Planned]]:
    """The bad entries as written, with what each is owed (counted by kind in ``kinds``);
    and the valid commands."""
    sent: list[Sent] = []
    valid: list[Planned] = []
    for planned, entry_id in zip(plan, ids, strict=True):
        kind, fields, channel, command_id = planned
        if kind.startswith("valid:"):
            valid.append(planned)
            continue
        kinds[kind] += 1
        owed, carries = what_is_owed(fields, channel, command_id)
        holds = kind == "pasted-token"
        sent.append(Sent(kind, entry_id, channel, command_id, owed, carries, holds))
    return sent, valid
