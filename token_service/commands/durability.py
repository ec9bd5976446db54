"""Replication before an ``ok`` reply: no acknowledged change lost to a failover.

The replies of a batch are published only once the batch's changes have reached the
replicas the settings ask for (Redis WAIT, bounded in time). A reply whose change the
replicas did not confirm in time still goes out, saying so in ``durability``: the change
stands on the primary, and the publisher may send the same command again, which is safe
and answered ``duplicate`` after another wait. Should the primary fail before its
replicas confirm, the wait fails and nothing is answered or acknowledged: the commands
are claimed again, from the new primary, and answered from what it holds. The same
holds when the batch's writes and its wait did not all reach one primary
(:mod:`token_service.redis.replication`).
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts import Durability
from token_service.commands.entry import CommandEntry, Stage
from token_service.redis.replication import WritesSeen
from token_service.redis.store import TokenStore

__all__ = ["await_replicas"]


async def await_replicas(
    batch: Sequence[CommandEntry],
    store: TokenStore,
    wanted: int,
    timeout_ms: int,
    seen: WritesSeen | None,
) -> None:
    """Wait for ``wanted`` replicas if any reply of ``batch`` is ``ok``; mark those replies.

    ``seen`` holds the servers the batch wrote to: the WAIT must run on that one primary.
    """
    answered = [
        entry
        for entry in batch
        if entry.stage is Stage.ANSWERED and entry.reply is not None and entry.reply.ok
    ]
    if wanted <= 0 or seen is None or not answered:
        return
    confirmed = await store.replicate(wanted, timeout_ms, seen)
    durability = Durability(wanted=wanted, confirmed=min(confirmed, wanted))
    for entry in answered:
        assert entry.reply is not None
        entry.reply = entry.reply.model_copy(update={"durability": durability})
