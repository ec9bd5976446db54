"""What a dead-letter entry holds: where the entry came from, why it was parked, and a copy.

Both the command handler and the audit worker park entries they cannot handle on
``tokens:dead-letter``, in this one shape. The copy is cut to 64 KiB, non-UTF-8 bytes are
escaped, and anything shaped like a token is masked.
"""

from __future__ import annotations

from contracts import DeadLetter
from contracts.token_format import TOKEN_SHAPE

__all__ = ["MAX_COPY_BYTES", "dead_letter"]

MAX_COPY_BYTES = 64 * 1024


def _copy(value: bytes) -> str:
    text = value[:MAX_COPY_BYTES].decode("utf-8", "backslashreplace")
    return TOKEN_SHAPE.sub(lambda m: f"{m.group(1)}_***", text)


def dead_letter(
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
