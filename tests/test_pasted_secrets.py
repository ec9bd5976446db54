"""Finding a pasted token however it is written, and masking it however long the entry is."""

from __future__ import annotations

import orjson
from faststream.redis.parser import BinaryMessageFormatV1

from contracts.token_format import find_tokens, mint
from tests.leaks import tokens_in_lines
from token_service.commands.decoding import Invalid, Unreadable, open_entry
from token_service.leaks import secrets_in
from token_service.redis.deadletters import MAX_COPY_BYTES, dead_letter_entry

BIG = 32 * 1024 * 1024


def _found(fields: dict[bytes, bytes]) -> set[str]:
    """The random part and checksum of each token found: what is glued before may vary."""
    return {token[-38:] for token in secrets_in(fields)}


def _body(token: str) -> set[str]:
    return {token[-38:]}


def _escaped(token: str) -> str:
    """The token as JSON may write it: the underscore as ``\\u005f``."""
    return token.replace("_", "\\u005f")


def _revoke(reason: str) -> bytes:
    text = '{"type":"RevokeToken","command_id":"c-1","actor":"alice","token_id":"01ABC",'
    return f'{text}"reason":"{reason}"}}'.encode()


async def _binary_envelope(body: bytes, headers: dict[str, str] | None = None) -> bytes:
    return await BinaryMessageFormatV1.encode(
        message=body, reply_to=None, headers=headers, correlation_id="c-1"
    )


async def test_an_escaped_token_in_faststreams_binary_envelope_is_found() -> None:
    token = mint()
    envelope = await _binary_envelope(_revoke(_escaped(token)))
    assert token.encode() not in envelope
    assert _found({b"__data__": envelope}) == _body(token)


async def test_a_token_in_a_binary_envelope_header_is_found() -> None:
    token = mint()
    envelope = await _binary_envelope(_revoke("x"), {"note": _escaped(token)})
    assert _found({b"__data__": envelope}) == _body(token)


def test_a_token_escaped_twice_in_the_legacy_json_envelope_is_found() -> None:
    token = mint()
    # The command is a JSON string inside JSON: its backslash is escaped once more.
    envelope = orjson.dumps({"data": _revoke(_escaped(token)).decode(), "headers": {}})
    assert b"\\\\u005f" in envelope
    assert _found({b"__data__": envelope}) == _body(token)


def test_an_escaped_token_in_text_that_is_not_json_is_found() -> None:
    token = mint("acme")
    assert _found({b"data": f'{{"reason": "{_escaped(token)}'.encode()}) == _body(token)
    assert _found({b"data": _escaped(token).replace("a", "\\u0061").encode()}) == _body(token)


def test_a_lone_surrogate_escape_neither_hides_a_token_nor_breaks_the_scan() -> None:
    token = mint()
    assert _found({b"data": f"\\ud800{_escaped(token)}\\udfff".encode()}) == _body(token)


def test_a_command_refused_for_a_token_says_so() -> None:
    refused = open_entry({b"data": _revoke(f"pasted {_escaped(mint())}")})
    assert isinstance(refused, Invalid)
    assert refused.holds_secret
    plain = open_entry({b"data": _revoke("x" * 600)})  # too long, but no secret
    assert isinstance(plain, Invalid)
    assert not plain.holds_secret


def test_a_dead_letter_copy_masks_an_escaped_token() -> None:
    token = mint()
    letter = dead_letter_entry(
        stream="s",
        entry_id="1-0",
        fields={b"data": f"not json {_escaped(token)}".encode()},
        reason="r",
        consumer="c",
    )
    assert tokens_in_lines([letter.decode()]) == []


def _straddling(token: str, limit: int) -> bytes:
    """``BIG`` bytes with ``token`` placed so that the cut at ``limit`` halves its random part."""
    head = b"x" * (limit - len(token) // 2)
    return head + token.encode() + b" " + b"y" * (BIG - len(head) - len(token) - 1)


def test_a_32_mb_value_is_copied_cut_with_a_straddling_token_masked() -> None:
    token = mint()
    value = _straddling(token, MAX_COPY_BYTES)
    letter = orjson.loads(
        dead_letter_entry(
            stream="s", entry_id="1-0", fields={b"data": value}, reason="r", consumer="c"
        )
    )
    copy = letter["fields"]["data"]
    assert len(copy) == MAX_COPY_BYTES
    assert copy.startswith("x" * 1000)
    assert "tok_***" in copy
    assert token[4:14] not in copy  # not even the start of its random part
    assert tokens_in_lines([copy]) == []


def test_a_32_mb_entry_is_read_without_parsing_and_its_token_is_found() -> None:
    token = mint()
    value = _straddling(token, 100)
    assert _found({b"data": value}) == _body(token)
    for fields in ({b"data": value}, {b"__data__": value}, {value: b"x"}):
        opened = open_entry(fields)
        assert isinstance(opened, Unreadable)
        assert len(opened.reason) < 1000
        assert token[4:14] not in opened.reason
        assert find_tokens(opened.reason, glued=True) == []
