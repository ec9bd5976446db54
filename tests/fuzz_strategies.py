"""Hypothesis strategies for the command fuzz: bad entries of every kind, each a ``Probe``
(its kind, and the stream fields to write, placeholders included)."""

from __future__ import annotations

import orjson
from faststream.redis.parser import BinaryMessageFormatV1
from hypothesis import strategies as st

from contracts.token_format import BASE62, RANDOM_LENGTH, checksum
from tests.fuzz_entries import (
    ALL_FIELDS,
    BASES,
    LUA,
    REPLY,
    REQUIRED,
    Probe,
    data_field,
)
from token_service.redis.envelopes import MAX_PAYLOAD_BYTES

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
    return "random-object", data_field(body)


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
    return "wrong-type", data_field(body)


@st.composite
def missing_or_extra(draw: st.DrawFn) -> Probe:
    kind = draw(command_types)
    body = BASES[kind]()
    if draw(st.booleans()):
        del body[draw(st.sampled_from(REQUIRED[kind]))]
        return "missing-field", data_field(body)
    extra = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in ALL_FIELDS))
    body[extra] = draw(json_values)
    return "extra-field", data_field(body)


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
    return "control-chars", data_field(body)


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
        return "oversized", data_field(body)
    body[where] = char * size
    return "oversized", data_field(body)


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
    return "malicious", data_field(body)


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
