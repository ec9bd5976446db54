"""Which primary a batch's writes went to, so that a WAIT is only trusted on that one.

WAIT answers for the server it runs on. Should a failover happen between a batch's
writes and its WAIT (a retried command reconnects to the new primary by itself), the
new primary would confirm its own replicas while the writes may have died with the old
one. So each of the batch's pipelines ends with ``INFO replication``, and its
``master_replid`` (which a promoted replica, or a primary restarted empty, changes) is
noted here; the WAIT's server must have the same one, or nothing is acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["PrimaryChanged", "WritesSeen"]


class PrimaryChanged(RedisConnectionError):
    """The batch's writes and its WAIT did not all reach one primary."""


@dataclass
class WritesSeen:
    """The replication ids of the servers a batch's pipelines ran on."""

    replids: set[str] = field(default_factory=set)

    def saw(self, info: object) -> None:
        """Note the server of one pipeline from its ``INFO replication`` reply."""
        replid = info.get("master_replid") if isinstance(info, dict) else None
        # An INFO that failed says nothing of the server: count it as another one.
        self.replids.add(str(replid) if replid else f"unknown-{len(self.replids)}")

    def check(self) -> None:
        """Raise :class:`PrimaryChanged` unless every pipeline ran on one server."""
        if len(self.replids) > 1:
            raise PrimaryChanged(
                "the primary changed during the batch: its writes are not acknowledged"
            )
