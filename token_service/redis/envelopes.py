"""What a command entry may hold: the contract's ``data`` JSON, or FastStream's envelope.

FastStream's publisher writes one field ``__data__``: a binary envelope (headers, then
the JSON body), or in older versions a JSON envelope. Both the decoding of commands and
the search for leaked secrets open it here.
"""

from __future__ import annotations

from typing import Any

from faststream.redis.parser import BinaryMessageFormatV1

__all__ = ["MAX_ENVELOPE_BYTES", "MAX_PAYLOAD_BYTES", "open_envelope_raw", "too_big_to_parse"]

MAX_PAYLOAD_BYTES = 64 * 1024
"""The largest command payload the contract allows."""
MAX_ENVELOPE_BYTES = 2 * MAX_PAYLOAD_BYTES
"""A FastStream legacy JSON envelope larger than this is not parsed (its payload cannot fit)."""


def too_big_to_parse(envelope: bytes) -> bool:
    """Whether a FastStream envelope is too large to be worth parsing."""
    # The binary format is sliced, not parsed: only a huge JSON envelope costs to read.
    binary = envelope.startswith(BinaryMessageFormatV1.IDENTITY_HEADER)
    return not binary and len(envelope) > MAX_ENVELOPE_BYTES


def open_envelope_raw(raw: bytes) -> tuple[bytes, Any]:
    """A FastStream envelope's body and headers (whatever its legacy JSON form held)."""
    payload, headers = BinaryMessageFormatV1.parse(raw)
    return payload, headers
