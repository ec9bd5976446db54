"""Finding every well-formed token in a stream entry, however it is written.

A token may be in any field name or value, written as is, hidden behind JSON ``\\u``
escapes, or inside a FastStream envelope's body and headers.
"""

from __future__ import annotations

import re

from contracts.token_format import decode_json_escapes, find_tokens
from token_service.redis.envelopes import open_envelope_raw, too_big_to_parse

__all__ = ["secrets_in", "tokens_in_text"]


_BODY_AFTER_UNDERSCORE = re.compile(rb"_[0-9A-Za-z]{38}")


def tokens_in_text(raw: bytes) -> list[str]:
    """Tokens in ``raw`` as written and with JSON escapes decoded."""
    # A cheap look first, as nearly every entry (each usage report) holds none: without an
    # escape, or 38 base62 characters after an underscore, no token is in the text.
    if b"\\u" not in raw and _BODY_AFTER_UNDERSCORE.search(raw) is None:
        return []
    text = raw.decode("utf-8", "replace")
    # JSON escapes (``tok\\u005f…``) hide a token from a scan of the raw text, not from
    # whoever reads the entry: look at the text with them decoded too.
    return find_tokens(decode_json_escapes(text), glued=True)


def _tokens_in_envelope(raw: bytes) -> list[str]:
    if too_big_to_parse(raw):
        return []  # a JSON envelope that large is not parsed; the raw scan covers it
    payload, headers = open_envelope_raw(raw)
    found = tokens_in_text(payload)
    if isinstance(headers, dict):
        for name, value in headers.items():
            found += tokens_in_text(f"{name} {value}".encode())
    return found


def secrets_in(fields: dict[bytes, bytes]) -> list[str]:
    """Every well-formed token in an entry: in any field name or value, as written, with
    JSON escapes decoded, and inside a FastStream envelope's body and headers."""
    found = [token for pair in fields.items() for raw in pair for token in tokens_in_text(raw)]
    if b"__data__" in fields:
        found += _tokens_in_envelope(fields[b"__data__"])
    return list(dict.fromkeys(found))
