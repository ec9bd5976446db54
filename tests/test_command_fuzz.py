"""Hostile input on ``tokens:commands``: every bad entry is answered or parked, nothing breaks.

Hypothesis throws batches of bad entries at a real service process with raw XADD:
garbage and non-JSON bytes, invalid UTF-8, control characters, 1 MB strings, 10,000-level
nesting, wrongly typed, missing and extra fields, Lua-looking text, huge arrays, pasted
(checksum-valid) tokens, other stream fields and FastStream envelopes, with valid commands
in between. Each bad entry must get a rejection reply (code, message, and for ``invalid``
the fields at fault) on its ``reply_to`` when that is usable, and otherwise a dead letter
or a ``CommandRejected`` event. Every valid command must succeed, no entry may stay
pending, no pasted token may stay anywhere, and the process must still be running.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

import orjson
import pytest
from faststream.redis.parser import BinaryMessageFormatV1
from hypothesis import HealthCheck, example, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from contracts import CommandReply
from contracts.token_format import (
    BASE62,
    RANDOM_LENGTH,
    checksum,
    find_tokens,
    is_well_formed,
    mint,
)
from tests.conftest import ADMIN
from tests.faults import until
from tests.leaks import tokens_in_lines, tokens_in_redis
from tests.processes import service_process
from token_service.commands.decoding import MAX_PAYLOAD_BYTES
from token_service.commands.pipeline import GROUP
from token_service.keys import Keys
from token_service.settings import ServiceSettings

REPLY = b"@REPLY@"  # replaced by a channel of the entry's own
CMD_ID = b"@CMDID@"  # replaced by a command id of the entry's own
TOKEN = b"@TOKEN@"  # replaced by a fresh, never issued token
EXAMPLES = 150
CODES = {"invalid", "forbidden", "not_found", "conflict", "internal"}

Fields = dict[bytes, bytes]
Probe = tuple[str, Fields]


def _data(body: object) -> Fields:
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

ints = st.integers(-(2**63), 2**63 - 1)  # what orjson can write
json_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
not_strings = st.one_of(
    st.booleans(),
    ints,
    st.floats(allow_nan=False),
    st.lists(ints, max_size=3),
    st.dictionaries(st.text(max_size=5), ints, max_size=2),
)
control = st.text(alphabet=[chr(c) for c in (*range(32), 127)], min_size=1, max_size=5)
command_types = st.sampled_from(sorted(BASES))


fake_tokens = st.builds(
    lambda prefix, body: f"{prefix}_{body}{checksum(body)}",
    st.sampled_from(["tok", "tok", "acme", "x1"]),
    st.text(alphabet=BASE62, min_size=RANDOM_LENGTH, max_size=RANDOM_LENGTH),
)
"""Checksum-valid tokens that were never issued: what a careless admin might paste."""


@st.composite
def garbage(draw: st.DrawFn) -> Probe:
    raw = draw(
        st.one_of(
            st.binary(max_size=300),
            st.sampled_from(
                [
                    b"",
                    b"null",
                    b"[]",
                    b"123",
                    b'"s"',
                    b"NaN",
                    b"{",
                    b"{'a': 1}",
                    b"\x00" * 9,
                    b'{"a": 1e999}',
                    b'{"type": "RotateToken", "grace_seconds": 123456789012345678901234567890}',
                ]
            ),
            st.text(max_size=200).map(str.encode),
        )
    )
    return "non-json", {b"data": raw}


@st.composite
def random_objects(draw: st.DrawFn) -> Probe:
    body = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
    if draw(st.booleans()):
        body["reply_to"] = REPLY.decode()
    return "random-object", _data(body)


@st.composite
def wrongly_typed(draw: st.DrawFn) -> Probe:
    kind = draw(command_types)
    body = BASES[kind]()
    name = draw(st.sampled_from([*REQUIRED[kind], "description", "grace_seconds", "reply_to"]))
    if name == "scopes":
        body[name] = draw(st.one_of(st.text(max_size=5), ints, st.lists(ints, min_size=1)))
    elif name == "grace_seconds":
        body[name] = draw(
            st.one_of(st.text(max_size=5), st.just(-1), st.just(10**9), st.lists(ints))
        )
    else:
        body[name] = draw(not_strings)
    return "wrong-type", _data(body)


@st.composite
def missing_or_extra(draw: st.DrawFn) -> Probe:
    kind = draw(command_types)
    body = BASES[kind]()
    if draw(st.booleans()):
        del body[draw(st.sampled_from(REQUIRED[kind]))]
        return "missing-field", _data(body)
    extra = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in ALL_FIELDS))
    body[extra] = draw(json_values)
    return "extra-field", _data(body)


@st.composite
def control_characters(draw: st.DrawFn) -> Probe:
    kind = draw(command_types)
    body = BASES[kind]()
    name = draw(st.sampled_from(["type", "command_id", "actor", "name", "token_id", "scopes"]))
    noise = draw(control)
    if name == "scopes":
        body[name] = [f"entities{noise}:read"]
    elif name in ("name", "token_id") and name not in body:
        body[name] = noise
    else:
        body[name] = f"{body.get(name, '')}{noise}"
    return "control-chars", _data(body)


@st.composite
def invalid_utf8(draw: st.DrawFn) -> Probe:
    body = orjson.dumps(BASES[draw(command_types)]())
    bad = draw(st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]))
    cut = draw(st.integers(0, len(body)))
    where = draw(st.sampled_from(["data", "name"]))
    if where == "name":
        return "invalid-utf8", {bad: body}
    return "invalid-utf8", {b"data": body[:cut] + bad + body[cut:]}


@st.composite
def oversized(draw: st.DrawFn) -> Probe:
    size = draw(st.sampled_from([MAX_PAYLOAD_BYTES + 1, 1_000_000]))
    char = draw(st.sampled_from(["x", "é", "_", "A"]))
    body = BASES[draw(command_types)]()
    where = draw(st.sampled_from(["description", "actor", "raw", "under-limit"]))
    if where == "raw":
        return "oversized", {b"data": (char * size).encode()}
    if where == "under-limit":  # parsed, then refused for its length
        body["reason" if "token_id" in body else "description"] = char * 20_000
        return "oversized", _data(body)
    body[where] = char * size
    return "oversized", _data(body)


@st.composite
def deeply_nested(draw: st.DrawFn) -> Probe:
    depth = draw(st.sampled_from([100, 1_000, 10_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    nested = opener * depth + "1" + closer * depth
    if draw(st.booleans()):
        return "deep-nesting", {b"data": nested.encode()}
    body = orjson.dumps(BASES[draw(command_types)]())
    where = draw(st.sampled_from(["actor", "scopes", "extra"]))
    text = body.decode().replace(f'"{where}":', f'"{where}":{nested},"_{where}":', 1)
    if where == "extra":
        text = text[:-1] + f',"extra":{nested}}}'
    return "deep-nesting", {b"data": text.encode()}


LUA = [
    "'); redis.call('FLUSHALL') --",
    "]] redis.call('DEL', KEYS[1]) [[",
    "\"..redis.call('CONFIG','SET','dir','/tmp')..\"",
    "*",
    "tokens:admins",
    "../../*",
    "return 1",
]


@st.composite
def malicious(draw: st.DrawFn) -> Probe:
    body = BASES[draw(command_types)]()
    attack = draw(st.sampled_from(["lua-actor", "lua-field", "huge-array", "array-body"]))
    lua = draw(st.sampled_from(LUA))
    if attack == "lua-actor":  # a valid shape, but not an administrator
        body["actor"] = lua
    elif attack == "lua-field":
        body[draw(st.sampled_from(["name", "token_id", "type"]))] = lua
        body.setdefault("scopes", [lua])
    elif attack == "huge-array":
        body["scopes"] = ["entities:read"] * draw(st.sampled_from([51, 5_000, 100_000]))
    else:
        return "malicious", {
            b"data": orjson.dumps(list(range(draw(st.sampled_from([10, 20_000])))))
        }
    return "malicious", _data(body)


@st.composite
def pasted_tokens(draw: st.DrawFn) -> Probe:
    token = draw(fake_tokens)
    form = draw(st.sampled_from(["plain", "glued-after", "glued-before", "escaped"]))
    shown = {
        "plain": token,
        "glued-after": f"{token}X",
        "glued-before": f"x{token}",
        "escaped": token.replace("_", "\\u005f", 1),
    }[form]
    body = BASES[draw(command_types)]()
    where = draw(
        st.sampled_from(
            [
                "reason",
                "description",
                "actor",
                "command_id",
                "reply_to",
                "key",
                "stream-field",
                "raw",
            ]
        )
    )
    if where in ("raw", "stream-field") and form == "escaped":
        shown = token  # outside JSON, a backslash escape is just text, not a token
    if where == "raw":
        return "pasted-token", {b"data": f"my token is {shown}".encode()}
    if where == "stream-field":  # another stream field next to broken data
        return "pasted-token", {b"data": b"{not json", f"note-{form}".encode(): shown.encode()}
    if where == "key":
        body[shown] = 1
    else:
        body[where] = f"pasted {shown}" if where in ("reason", "description") else shown
    text = orjson.dumps(body)
    if form == "escaped":  # orjson escaped the backslash: undo it, so JSON decodes the escape
        text = text.replace(b"\\\\u005f", b"\\u005f")
    return "pasted-token", {b"data": text}


@st.composite
def envelopes(draw: st.DrawFn) -> Probe:
    """FastStream's ``__data__`` field: garbage, or the legacy JSON envelope, broken."""
    headers = draw(st.one_of(json_values, st.just({"reply_to": REPLY.decode()})))
    inner = draw(st.one_of(st.text(max_size=40), st.just("{not json"), st.just('{"type":"Nope"}')))
    envelope = draw(
        st.one_of(
            st.binary(max_size=100).map(lambda raw: BinaryMessageFormatV1.IDENTITY_HEADER + raw),
            st.just(orjson.dumps({"data": inner, "headers": headers})),
            st.binary(max_size=100),
        )
    )
    fields = {b"__data__": envelope}
    if draw(st.booleans()):
        fields[b"other"] = draw(st.binary(max_size=20))
    return "envelope", fields


@st.composite
def no_data_field(draw: st.DrawFn) -> Probe:
    names = draw(st.lists(st.binary(min_size=1, max_size=10), min_size=1, max_size=3, unique=True))
    fields = {name: b"x" for name in names if name not in (b"data", b"__data__")} or {b"x": b"1"}
    return "no-data-field", fields


bad_entries = st.one_of(
    garbage(),
    random_objects(),
    wrongly_typed(),
    missing_or_extra(),
    control_characters(),
    invalid_utf8(),
    oversized(),
    deeply_nested(),
    malicious(),
    pasted_tokens(),
    envelopes(),
    no_data_field(),
)


def _with(base: str, **changes: object) -> Fields:
    return _data({**BASES[base](), **changes})


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
    ("oversized", _with("GenerateToken", description="d" * 1_000_000)),
    ("malicious", _with("GenerateToken", actor=LUA[0])),
    ("malicious", _with("RevokeToken", token_id="*")),
    ("malicious", _with("RevokeToken")),  # a well-formed command for a token that never was
    ("malicious", _with("GenerateToken", scopes=["entities:read"] * 100_000)),
    ("malicious", {b"data": orjson.dumps(list(range(200_000)))}),
    ("control-chars", _with("GenerateToken", actor="ali\x00ce", name="a\nb")),
    ("invalid-utf8", {b"data": b'{"type":"GenerateToken","actor":"\xff\xfe"}'}),
    ("no-data-field", {b"\xff\x00": b"\xfe"}),
    ("pasted-token", _with("RevokeToken", reason="leaked @TOKEN@X")),
    ("pasted-token", _with("GenerateToken", description="x@TOKEN@")),
    ("pasted-token", {b"data": _with("RevokeToken")[b"data"], b"note": b"@TOKEN@"}),
]
"""Cases that must be tried every run, whatever Hypothesis draws."""


def _substitute(fields: Fields, channel: str, command_id: str) -> Fields:
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


def _expected(fields: Fields, channel: str, command_id: str) -> tuple[bool, bool]:
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


@dataclass
class Tally:
    """What the whole run did, for the figures."""

    kinds: Counter[str] = field(default_factory=Counter)
    replies: int = 0
    dead_letters: int = 0
    rejected_events: int = 0
    valid_ok: int = 0
    deleted: int = 0
    rounds: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    live_tokens: list[str] = field(default_factory=list)


class Inbox:
    """Replies on every ``fz-*`` channel, by channel."""

    def __init__(self) -> None:
        self.by_channel: dict[str, list[str]] = {}

    async def wait(self, channel: str, limit_s: float = 10.0) -> str:
        """The first reply published on ``channel``, waiting up to ``limit_s`` for it."""
        deadline = asyncio.get_running_loop().time() + limit_s
        while channel not in self.by_channel:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no reply on {channel}")
            await asyncio.sleep(0.01)
        return self.by_channel[channel][0]


@asynccontextmanager
async def replies_on(redis: Redis, pattern: str) -> AsyncIterator[Inbox]:
    """Collect every reply on channels matching ``pattern`` while the block runs."""
    inbox = Inbox()
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe(pattern)

    async def pump() -> None:
        async for message in pubsub.listen():
            inbox.by_channel.setdefault(message["channel"], []).append(message["data"])

    task = asyncio.create_task(pump())
    try:
        yield inbox
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _settled(redis: Redis, keys: Keys, last_id: str) -> bool:
    groups = await redis.xinfo_groups(keys.commands)
    (group,) = [g for g in groups if g["name"] == GROUP]
    delivered = tuple(int(p) for p in group["last-delivered-id"].split("-"))
    if delivered < tuple(int(p) for p in last_id.split("-")):
        return False
    return int((await redis.xpending(keys.commands, GROUP))["pending"]) == 0


async def _since(redis: Redis, stream: str, after: str) -> list[dict[str, Any]]:
    raw = cast(list[tuple[str, dict[str, str]]], await redis.xrange(stream, min=f"({after}"))
    return [orjson.loads(fields["data"]) for _, fields in raw]


async def _last_id(redis: Redis, stream: str) -> str:
    newest = cast(list[tuple[str, object]], await redis.xrevrange(stream, count=1))
    return newest[0][0] if newest else "0-0"


class Planned(NamedTuple):
    """One entry to write: a bad one (its kind) or a valid command (``valid:<type>``)."""

    kind: str
    fields: Fields
    channel: str
    command_id: str


def _valid_command(n: int, tally: Tally) -> Planned:
    """A valid command: the revocation of a token an earlier round made, or a new token."""
    ok_nonce = uuid.uuid4().hex[:12]
    if tally.live_tokens and n % 4 == 2:
        command: dict[str, Any] = {
            "type": "RevokeToken",
            "token_id": tally.live_tokens.pop(),
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
        "reply_to": f"fz-{ok_nonce}",
    }
    return Planned("valid:" + command["type"], _data(command), f"fz-{ok_nonce}", f"ok-{ok_nonce}")


def _bad_entries_with_valid_commands_between(batch: list[Probe], tally: Tally) -> list[Planned]:
    """Each bad entry with a channel and command id of its own; a valid command after every
    other one."""
    plan: list[Planned] = []
    for n, (kind, template) in enumerate(batch):
        nonce = uuid.uuid4().hex[:12]
        channel, command_id = f"fz-{nonce}", f"fz-c-{nonce}"
        plan.append(Planned(kind, _substitute(template, channel, command_id), channel, command_id))
        if n % 2 == 0:  # a valid command between bad ones
            plan.append(_valid_command(n, tally))
    return plan


async def _write(redis: Redis, keys: Keys, plan: list[Planned]) -> list[str]:
    """XADD every planned entry at once; their entry ids."""
    async with redis.pipeline(transaction=False) as pipe:
        for planned in plan:
            pipe.xadd(keys.commands, planned.fields)  # type: ignore[arg-type]
        return cast(list[str], await pipe.execute())


def _sort_out(
    plan: list[Planned], ids: list[str], tally: Tally
) -> tuple[list[Sent], list[Planned]]:
    """The bad entries as written, with what each is owed; and the valid commands."""
    sent: list[Sent] = []
    valid: list[Planned] = []
    for planned, entry_id in zip(plan, ids, strict=True):
        kind, fields, channel, command_id = planned
        if kind.startswith("valid:"):
            valid.append(planned)
            continue
        tally.kinds[kind] += 1
        owed, carries = _expected(fields, channel, command_id)
        holds = kind == "pasted-token"
        sent.append(Sent(kind, entry_id, channel, command_id, owed, carries, holds))
    return sent, valid


async def _valid_commands_succeeded(inbox: Inbox, valid: list[Planned], tally: Tally) -> None:
    for kind, _, channel, command_id in valid:
        reply = CommandReply.model_validate_json(await inbox.wait(channel))
        assert reply.ok, f"{kind} {command_id} failed: {reply.error}"
        tally.valid_ok += 1
        if kind == "valid:GenerateToken":
            assert reply.secret is not None
            assert is_well_formed(reply.secret)
            assert reply.token is not None
            tally.live_tokens.append(reply.token.id)


@dataclass
class Parked:
    """What the round left on the dead-letter stream and as ``CommandRejected`` events."""

    letters: set[str]
    rejected_ids: set[str | None]
    anonymous: int


async def _parked_since(redis: Redis, keys: Keys, marks: dict[str, str], tally: Tally) -> Parked:
    letters = {
        d["entry_id"] for d in await _since(redis, keys.dead_letter, marks[keys.dead_letter])
    }
    rejected = [
        e
        for e in await _since(redis, keys.events, marks[keys.events])
        if e["type"] == "CommandRejected"
    ]
    by_id = {e["command_id"] for e in rejected}
    anonymous = sum(e["command_id"] is None for e in rejected)
    tally.dead_letters += len(letters)
    tally.rejected_events += len(rejected)
    return Parked(letters, by_id, anonymous)


async def _rejection_replied(inbox: Inbox, entry: Sent, tally: Tally) -> None:
    """A rejection on the entry's channel, with a code, a message, the fields at fault for
    ``invalid``, and no token."""
    raw = await inbox.wait(entry.channel)
    reply = CommandReply.model_validate_json(raw)
    assert not reply.ok, f"{entry.kind} entry {entry.entry_id} was accepted"
    assert reply.error is not None
    assert reply.error.code in CODES
    assert reply.error.message
    if reply.error.code == "invalid":
        assert reply.error.fields, f"{entry.kind}: invalid without the fields at fault"
    assert find_tokens(raw, glued=True) == [], "a reply echoes a token"
    tally.replies += 1
    tally.codes[reply.error.code] += 1


async def _each_bad_entry_answered_or_parked(
    redis: Redis, keys: Keys, inbox: Inbox, sent: list[Sent], parked: Parked, tally: Tally
) -> None:
    """A reply where one is owed, else a dead letter or an event; and an entry holding a
    token deleted from the stream."""
    unaccounted = 0
    for entry in sent:
        if entry.reply_owed:
            await _rejection_replied(inbox, entry, tally)
        elif entry.entry_id not in parked.letters and not (
            entry.carries_id and entry.command_id in parked.rejected_ids
        ):
            unaccounted += 1
        if entry.holds_token:
            assert await redis.xrange(keys.commands, min=entry.entry_id, max=entry.entry_id) == []
            tally.deleted += 1
    assert unaccounted <= parked.anonymous, (
        f"{unaccounted} bad entries left no reply, letter or event"
    )


async def _round(redis: Redis, keys: Keys, inbox: Inbox, batch: list[Probe], tally: Tally) -> None:
    tally.rounds += 1
    marks = {s: await _last_id(redis, s) for s in (keys.dead_letter, keys.events)}
    plan = _bad_entries_with_valid_commands_between(batch, tally)
    ids = await _write(redis, keys, plan)
    sent, valid = _sort_out(plan, ids, tally)
    await until(lambda: _settled(redis, keys, ids[-1]), 30, "every entry settled")
    await _valid_commands_succeeded(inbox, valid, tally)
    parked = await _parked_since(redis, keys, marks, tally)
    await _each_bad_entry_answered_or_parked(redis, keys, inbox, sent, parked, tally)


async def _connect(settings: ServiceSettings) -> Redis:
    redis = Redis.from_url(settings.redis_url or "", decode_responses=True)
    await until(lambda: _group_exists(redis, Keys(settings.key_prefix)), 30, "service up")
    return redis


async def _group_exists(redis: Redis, keys: Keys) -> bool:
    if not await redis.exists(keys.commands):
        return False
    return any(g["name"] == GROUP for g in await redis.xinfo_groups(keys.commands))


async def _still_there(redis: Redis, keys: Keys, token_ids: list[str]) -> int:
    return sum([await redis.exists(keys.token(token_id)) for token_id in token_ids])


@pytest.mark.slow
def test_hostile_entries_are_answered_or_parked_and_the_service_stays_up(
    settings: ServiceSettings, tmp_path: Path
) -> None:
    run_seed = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
    print(f"\nFIGURES command-fuzz: seed={run_seed} (FUZZ_SEED={run_seed} repeats this run)")
    keys = Keys(settings.key_prefix)
    log = tmp_path / "service.log"
    tally = Tally()
    with service_process(settings, log) as process, asyncio.Runner() as runner:
        redis = runner.run(_connect(settings))
        inbox_context = replies_on(redis, "fz-*")
        inbox = runner.run(inbox_context.__aenter__())
        try:

            @seed(run_seed)
            @hypothesis_settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,  # failing examples may hold tokens: keep them off the disk
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(st.lists(bad_entries, min_size=1, max_size=6))
            @example(KNOWN_HOSTILE[: len(KNOWN_HOSTILE) // 2])
            @example(KNOWN_HOSTILE[len(KNOWN_HOSTILE) // 2 :])
            def one_round(batch: list[Probe]) -> None:
                assert process.poll() is None, "the service died"
                runner.run(_round(redis, keys, inbox, batch, tally))

            one_round()
            assert process.poll() is None, "the service died"
            kept = runner.run(_still_there(redis, keys, tally.live_tokens))
            leaks = runner.run(
                tokens_in_redis(settings.redis_url or "", f"{settings.key_prefix}:*")
            )
        finally:
            runner.run(inbox_context.__aexit__(None, None, None))
            runner.run(redis.aclose())
        alive = process.poll() is None
    lines = log.read_text().splitlines()
    failures = sum("command_preparation_failed" in line for line in lines)
    codes = dict(sorted((str(code), n) for code, n in tally.codes.items()))
    print(
        f"FIGURES command-fuzz: rounds={tally.rounds} bad_entries={sum(tally.kinds.values())}"
        f" valid_ok={tally.valid_ok} rejection_replies={tally.replies}"
        f" codes={codes} dead_letters={tally.dead_letters}"
        f" command_rejected={tally.rejected_events} token_entries_deleted={tally.deleted}"
        f" preparation_failures={failures} service_alive={alive}"
    )
    print(f"FIGURES command-fuzz: kinds={dict(sorted(tally.kinds.items()))}")
    assert alive
    assert tally.valid_ok > 0
    assert kept == len(tally.live_tokens), "a token valid commands made is gone"
    assert leaks == []
    assert tokens_in_lines(lines) == []
    assert failures == 0, "an entry raised while being read: see command_preparation_failed"
