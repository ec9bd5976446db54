"""What the command handler writes outside FastStream, declared for the AsyncAPI document.

Events, replies and dead letters are written inside one Redis transaction, not through
FastStream's publishers; they are declared as publishers all the same, so that the
document generated from the real broker carries them. Nothing is sent through them.
"""

from __future__ import annotations

from faststream.redis import PubSub, RedisBroker

from contracts import CommandReply, DeadLetter, LifecycleEvent
from token_service.keys import Keys

__all__ = ["declare_outputs"]

_REPLY_CHANNEL = "{reply_to}"


def declare_outputs(broker: RedisBroker, keys: Keys) -> None:
    """Declare what the command handler writes, for the document; nothing is sent through them."""
    broker.publisher(
        stream=keys.events,
        schema=LifecycleEvent,
        title=keys.events,
        description=(
            "Lifecycle events, each written in the same Redis transaction as the change it"
            " reports. Read by the audit worker (group `audit`) and by dashboards."
        ),
    )
    broker.publisher(
        channel=PubSub(_REPLY_CHANNEL),
        schema=CommandReply,
        title="replies",
        description=(
            "The one reply to each command, published on the command's own `reply_to`"
            " channel and never stored. `secret` appears only in the first reply that mints it."
        ),
    )
    broker.publisher(
        stream=keys.dead_letter,
        schema=DeadLetter,
        title=keys.dead_letter,
        description=(
            "Entries the token service or the audit worker could not handle (undecodable,"
            " unknown type, failing again and again), with the reason, for operators."
        ),
    )
