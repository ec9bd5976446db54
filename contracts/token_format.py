"""The token string: ``<prefix>_<32 random base62><6 checksum base62>``.

Everything here is pure computation, so scanners and gateways can reject a
malformed or mistyped token without asking Redis.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib

__all__ = [
    "BASE62",
    "DEFAULT_PREFIX",
    "MAX_TOKEN_BODY",
    "RANDOM_LENGTH",
    "TOKEN_SHAPE",
    "checksum",
    "decode_json_escapes",
    "find_tokens",
    "hint",
    "is_well_formed",
    "mask_tokens_in",
    "mint",
    "secret_digest",
]

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DEFAULT_PREFIX = "tok"
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
_HINT_LENGTH = 4
_DIGIT = {char: value for value, char in enumerate(BASE62)}
_BODY = re.compile(r"[0-9A-Za-z]{38}")
MAX_TOKEN_BODY = 1 + RANDOM_LENGTH + CHECKSUM_LENGTH
"""The underscore and everything after it: the secret part of a token, in characters."""
_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")
_ESCAPE_ROUNDS = 3

TOKEN_SHAPE = re.compile(r"(?<![0-9A-Za-z])([0-9A-Za-z]+)_([0-9A-Za-z]{38})(?![0-9A-Za-z])")
"""Anything shaped like a token, whatever its prefix; used to find and mask them."""

# A token's body right after an underscore, whatever is glued on either side. No leading
# character class: ``[0-9A-Za-z]*_`` would rescan long runs of letters quadratically.
_GLUED_BODY = re.compile(r"_([0-9A-Za-z]{38})")


def checksum(random_part: str) -> str:
    """CRC-32 of the random part's ASCII bytes, in base62, left-padded to 6."""
    value = zlib.crc32(random_part.encode("ascii"))
    digits = []
    while value:
        value, remainder = divmod(value, 62)
        digits.append(BASE62[remainder])
    return "".join(reversed(digits)).rjust(CHECKSUM_LENGTH, "0")


def _random_base62(length: int) -> str:
    # Bytes below 248 (= 4 * 62) map onto the alphabet without bias; the rest are skipped.
    chars: list[str] = []
    while len(chars) < length:
        chars.extend(BASE62[byte % 62] for byte in secrets.token_bytes(length * 2) if byte < 248)
    return "".join(chars[:length])


def mint(prefix: str = DEFAULT_PREFIX) -> str:
    """A new token with ``RANDOM_LENGTH`` characters from :mod:`secrets`."""
    random_part = _random_base62(RANDOM_LENGTH)
    return f"{prefix}_{random_part}{checksum(random_part)}"


def is_well_formed(token: str, prefix: str = DEFAULT_PREFIX) -> bool:
    """True when ``token`` has the prefix, the length, the alphabet and a valid checksum."""
    start = len(prefix) + 1
    if (
        len(token) != start + RANDOM_LENGTH + CHECKSUM_LENGTH
        or not token.startswith(prefix)
        or token[start - 1] != "_"
        or not _BODY.fullmatch(token, start)
    ):
        return False
    # Gateways call this on every request: read the checksum as a number, compare once.
    value = 0
    for char in token[start + RANDOM_LENGTH :]:
        value = value * 62 + _DIGIT[char]
    return value == zlib.crc32(token[start : start + RANDOM_LENGTH].encode("ascii"))


def secret_digest(token: str) -> str:
    """Lowercase hex SHA-256 of the whole token string: the only form that is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hint(token: str) -> str:
    """The prefix and the first four characters after it, safe to display."""
    head, _, body = token.partition("_")
    return f"{head}_{body[:_HINT_LENGTH]}"


def _valid_body(body: str) -> bool:
    return checksum(body[:RANDOM_LENGTH]) == body[RANDOM_LENGTH:]


def _head_before(text: str, underscore: int) -> str:
    start = underscore
    while start > 0 and text[start - 1] in _DIGIT:
        start -= 1
    return text[start:underscore]


def _find_glued(text: str, prefix: str | None) -> list[str]:
    found = []
    for match in _GLUED_BODY.finditer(text):
        body = match.group(1)
        if not _valid_body(body):
            continue
        head = _head_before(text, match.start())
        if prefix is None:
            found.append(f"{head}_{body}")
        elif head.endswith(prefix):
            found.append(f"{prefix}_{body}")
    return found


def find_tokens(text: str, prefix: str | None = None, *, glued: bool = False) -> list[str]:
    """Every well-formed token in ``text``; lookalikes are skipped.

    Without ``prefix``, any prefix counts (to mask or refuse whatever looks like a token).
    With it, only tokens of that prefix are returned, cut free of what is glued before
    them (``key%3Dtok_…`` yields ``tok_…``), so that their hash is the stored one.

    With ``glued``, a token is found even with letters or digits glued after it
    (``tok_…X``): a valid checksum right after an underscore is enough. That is what
    anything guarding against leaks should use; without it such text is a lookalike.
    """
    if glued:
        return _find_glued(text, prefix)
    found = []
    for match in TOKEN_SHAPE.finditer(text):
        head, body = match.groups()
        if not _valid_body(body):
            continue
        if prefix is None:
            found.append(match.group(0))
        elif head.endswith(prefix):
            found.append(f"{prefix}_{body}")
    return found


def _unescape(match: re.Match[str]) -> str:
    code = int(match.group(1), 16)
    # A surrogate is never part of a token, and a lone one could not be written back out.
    return match.group(0) if 0xD800 <= code <= 0xDFFF else chr(code)


def decode_json_escapes(text: str) -> str:
    """``text`` with every JSON ``\\uXXXX`` escape written as the character it stands for.

    A token written as ``tok\\u005f…`` is a token to any JSON reader, and one inside a JSON
    string inside JSON (FastStream's legacy envelope) is escaped twice, so the decoding is
    repeated (a few rounds). It is a decoding for finding tokens, not a JSON parser: an
    escaped backslash before ``u`` is decoded too, which can only find more.
    """
    for _ in range(_ESCAPE_ROUNDS):
        if "\\u" not in text:
            break
        text = _ESCAPE.sub(_unescape, text)
    return text


def _mask_glued(match: re.Match[str]) -> str:
    return "_***" if _valid_body(match.group(1)) else match.group(0)


def mask_tokens_in(text: str) -> str:
    """``text`` with every token masked as ``<prefix>_***``.

    Masks anything shaped like a token (checksum or not), and also any token with text
    glued after it (``tok_…X`` becomes ``tok_***X``), which only a valid checksum betrays.
    """
    masked = TOKEN_SHAPE.sub(lambda m: f"{m.group(1)}_***", text)
    return _GLUED_BODY.sub(_mask_glued, masked)
