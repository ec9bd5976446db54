"""Who may write commands, and whom each may act for (wire contract version 2).

Each publisher writes to its own stream, ``<prefix>:commands:<name>``, which only its
Redis user may XADD to, and hears replies only on ``<prefix>:replies:<name>:*``. What a
publisher may assert as ``actor`` is the operators' word, in ``TOKENS_PUBLISHERS``:
``billing`` acts only as itself; ``console:delegating`` acts for any administrator (a
console that signs administrators in). Version 1's shared stream, read only where the
deployment trusts it, is the publisher ``shared`` and may assert anyone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from token_service.keys import Keys

__all__ = ["SHARED", "Publisher", "Source", "parse_publisher"]

SHARED = "shared"
"""The name version 1's shared stream goes by; no publisher may take it."""
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


@dataclass(frozen=True, slots=True)
class Publisher:
    """A publisher the operators registered."""

    name: str
    delegating: bool = False
    """May act for any administrator; otherwise only as itself."""

    def may_act_as(self, actor: str) -> bool:
        """Whether this publisher may send a command whose ``actor`` is ``actor``."""
        return self.delegating or self.name == SHARED or actor == self.name


def parse_publisher(text: str) -> Publisher:
    """``name`` or ``name:delegating``, as ``TOKENS_PUBLISHERS`` lists them."""
    name, _, kind = text.strip().partition(":")
    if not _NAME.fullmatch(name) or name == SHARED:
        raise ValueError(f"publisher names are [a-z0-9][a-z0-9_-]{{0,62}} and not {SHARED!r}")
    if kind not in ("", "delegating"):
        raise ValueError("a publisher is `name` or `name:delegating`")
    return Publisher(name, delegating=kind == "delegating")


@dataclass(frozen=True, slots=True)
class Source:
    """One command stream the service reads, and what its entries may do."""

    publisher: Publisher
    stream: str
    reply_prefix: str
    """Replies go only to channels that start with this."""

    @classmethod
    def of(cls, publisher: Publisher, keys: Keys) -> Source:
        """The stream and reply channels of ``publisher``."""
        if publisher.name == SHARED:
            return cls(publisher, keys.commands, keys.replies_prefix)
        stream = keys.publisher_commands(publisher.name)
        return cls(publisher, stream, keys.replies(publisher.name))
