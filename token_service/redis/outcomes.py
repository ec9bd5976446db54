"""What became of a command, as the Redis functions answer it and as Redis remembers it.

The remembered outcome of a command (``{p}:command:<id>``) is JSON in one of two shapes,
written by the functions (``lua/_guard.lua`` for a change, ``lua/reject.lua`` for a
rejection, whose JSON :func:`rejection_record` makes) and read back only by
:func:`remembered`::

    {"ok": true, "token": {...the token record's fields...}, "body": "<digest>"}
    {"ok": false, "error": {"code": "...", "message": "...", "fields": {...}}, "body": "..."}

``body`` is a digest of the command's fields but ``reply_to``: the same command id with
another body is a conflict, never answered with this outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import orjson

from contracts import ErrorCode
from token_service.plans import Rejection

__all__ = [
    "Applied",
    "Failed",
    "Outcome",
    "Remembered",
    "Repeated",
    "from_reply",
    "rejection_record",
    "remembered",
]


@dataclass(frozen=True, slots=True)
class Applied:
    """The command changed state; here is the token record after it."""

    record: dict[str, str]


Remembered: TypeAlias = Applied | Rejection
"""A command's first outcome."""


@dataclass(frozen=True, slots=True)
class Repeated:
    """The command was handled before; ``first`` is what came of it then."""

    first: Remembered


@dataclass(frozen=True, slots=True)
class Failed:
    """Redis could not run the function; the command may be tried again."""

    error: Exception


Outcome: TypeAlias = Applied | Repeated | Rejection | Failed


def rejection_record(rejection: Rejection, body: str) -> bytes:
    """The remembered outcome of a refused command whose body has digest ``body``."""
    error: dict[str, object] = {"code": rejection.code.value, "message": rejection.message}
    if rejection.fields is not None:
        error["fields"] = rejection.fields
    return orjson.dumps({"ok": False, "error": error, "body": body})


def remembered(stored: str | bytes) -> Remembered:
    """Read a remembered outcome back."""
    outcome = orjson.loads(stored)
    if outcome.get("ok"):
        return Applied({str(k): str(v) for k, v in outcome["token"].items()})
    error = outcome["error"]
    return Rejection(ErrorCode(error["code"]), str(error["message"]), error.get("fields"))


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def from_reply(reply: object) -> Outcome:
    """What a command function's reply (or the error in its place) means."""
    if isinstance(reply, Exception):
        return Failed(reply)
    assert isinstance(reply, list)
    kind = reply[0]
    if kind == "ok":
        return Applied(_pairs(reply[1]))
    if kind == "duplicate":
        return Repeated(remembered(reply[1]))
    if kind == "rejected":
        return Rejection(ErrorCode(reply[1]), reply[2])
    assert kind == "recorded"  # a rejection was remembered, with its event
    return Applied({})
