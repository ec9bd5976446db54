"""Consumer-group plumbing shared by the token service and the audit worker.

A group is created at id 0 (FastStream would create it at ``$`` and skip what was
written before the first start). An entry delivered more than ``max_deliveries`` times
is given up on. Settling a batch is one MULTI: dead letters, whatever else the caller
writes, then XACK, so that if Redis refuses a write (out of memory) nothing is
acknowledged either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from token_service.redis.deadletters import dead_letter_entry

__all__ = ["ConsumerGroup", "Parked"]


@dataclass(frozen=True, slots=True)
class Parked:
    """An entry moved to the dead-letter stream, and why."""

    entry_id: str
    fields: dict[bytes, bytes] = field(repr=False)
    reason: str


@dataclass(frozen=True, slots=True)
class ConsumerGroup:
    """One consumer of one group on one stream."""

    redis: Redis
    stream: str
    group: str
    consumer: str
    dead_letters: str
    """The dead-letter stream."""
    max_deliveries: int

    async def ensure(self) -> None:
        """Create the group at id 0 (and the stream), unless it exists."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def deliveries(self, entry_id: str) -> int:
        """How many times an entry has been delivered (1 once it is acknowledged)."""
        pending = await self.redis.xpending_range(
            self.stream, self.group, min=entry_id, max=entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 1

    async def given_up(self, entry_id: str) -> str | None:
        """Why an entry is given up on (delivered too often), or ``None`` to go on."""
        deliveries = await self.deliveries(entry_id)
        if deliveries > self.max_deliveries:
            return f"not handled after {deliveries - 1} deliveries"
        return None

    async def settle(
        self,
        done: Sequence[str],
        parked: Sequence[Parked] = (),
        *,
        also: Callable[[Pipeline], None] | None = None,
    ) -> None:
        """Dead-letter ``parked``, write what ``also`` adds, and acknowledge everything."""
        ids = [*done, *(p.entry_id for p in parked)]
        if not ids:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for entry in parked:
                letter = dead_letter_entry(
                    stream=self.stream,
                    entry_id=entry.entry_id,
                    fields=entry.fields,
                    reason=entry.reason,
                    consumer=self.consumer,
                )
                pipe.xadd(self.dead_letters, {"data": letter})
            if also is not None:
                also(pipe)
            pipe.xack(self.stream, self.group, *ids)
            await pipe.execute()
