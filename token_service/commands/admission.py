"""What an entry may ask before anything else is done with it (wire contract version 2).

A publisher hears replies only on its own channels, and asserts only the actors the
operators let it assert (``token_service.publishers``). Both are checked before the
administrator check, and long before a command id is looked up.
"""

from __future__ import annotations

from dataclasses import replace

from contracts import ErrorCode
from token_service.commands.decoding import About
from token_service.plans import Rejection
from token_service.publishers import Source

__all__ = ["admit_channels", "refuse_foreign_actor"]


def admit_channels(source: Source, about: About) -> tuple[About, Rejection | None]:
    """Keep the reply channels under the publisher's prefix; refuse a command naming any other.

    A refused channel is never published to: the command is answered nowhere.
    """
    prefix = source.reply_prefix
    allowed = tuple(c for c in about.reply_channels if c.startswith(prefix))
    if allowed == about.reply_channels:
        return about, None
    fields = {"reply_to": f"replies go only to channels under '{prefix}'"}
    refusal = Rejection(ErrorCode.INVALID, "the reply channel is not this publisher's", fields)
    return replace(about, reply_channels=allowed), refusal


def refuse_foreign_actor(source: Source, actor: str) -> Rejection | None:
    """A refusal when the publisher may not act as ``actor``; ``None`` when it may."""
    if source.publisher.may_act_as(actor):
        return None
    name = source.publisher.name
    return Rejection(
        ErrorCode.FORBIDDEN, f"publisher '{name}' may act only as itself, not as {actor[:64]!r}"
    )
