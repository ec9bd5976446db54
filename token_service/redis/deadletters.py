"""What a dead-letter entry holds: where the entry came from, why it was parked, and a copy.

Both the command handler and the audit worker park entries they cannot handle on
``tokens:dead-letter``, in this one shape. The copy is cut to 64 KiB, non-UTF-8 bytes are
escaped, and anything shaped like a token is masked, also a token written with JSON
``\\u`` escapes (the copy then shows those escapes decoded).
"""

from __future__ import annotations

from contracts import DeadLetter
from contracts.token_format import (
    MAX_TOKEN_BODY,
    decode_json_escapes,
    find_tokens,
    mask_tokens_in,
)

__all__ = ["MAX_COPY_BYTES", "dead_letter_entry"]

MAX_COPY_BYTES = 64 * 1024
# Room past the cut for a token's secret part, even written with escapes (6 bytes a character).
_SLACK = 8 * MAX_TOKEN_BODY


def _copy(value: bytes) -> str:
    # Cut with room to spare, masked, then cut to the limit: masking a huge value whole
    # costs seconds, and a cut through a token before masking would leave its random part
    # readable (the checksum can be computed from that).
    text = value[: MAX_COPY_BYTES + _SLACK].decode("utf-8", "backslashreplace")
    if "\\u" in text:
        decoded = decode_json_escapes(text)
        if find_tokens(decoded, glued=True):  # escaped tokens are masked in plain text
            text = decoded
    return mask_tokens_in(text)[:MAX_COPY_BYTES]


def dead_letter_entry(
    *, stream: str, entry_id: str, fields: dict[bytes, bytes], reason: str, consumer: str
) -> bytes:
    """The ``data`` of one dead-letter entry."""
    return DeadLetter(
        stream=stream,
        entry_id=entry_id,
        reason=reason,
        fields={_copy(name): _copy(value) for name, value in fields.items()},
        consumer=consumer,
    ).to_json()
