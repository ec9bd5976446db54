"""What a dead-letter entry holds: where the entry came from, why it was parked, and a copy.

Both the command handler and the audit worker park entries they cannot handle on
``tokens:dead-letter``, in this one shape. The copy is cut to 64 KiB, non-UTF-8 bytes are
escaped, and anything shaped like a token is masked.
"""

from __future__ import annotations

from contracts import DeadLetter
from contracts.token_format import mask_tokens_in

__all__ = ["MAX_COPY_BYTES", "dead_letter"]

MAX_COPY_BYTES = 64 * 1024


def _copy(value: bytes) -> str:
    # Masked before it is cut: a cut through a token would leave its random part unmasked,
    # and the checksum can be computed from that.
    return mask_tokens_in(value.decode("utf-8", "backslashreplace"))[:MAX_COPY_BYTES]


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
