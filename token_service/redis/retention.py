"""Stream retention that never takes an entry a consumer group still needs.

An entry may go once every group on its stream has acknowledged it, and only when it is
older than the stream's retention age or beyond its retention length. The trim point is
computed from the groups themselves: below the oldest entry any group has pending, and
below the first entry any group has not been delivered yet (the one after its
last-delivered id). A slow or stopped group therefore holds its stream's history where it
is, and a group added later reads whatever the retention kept.

Redis permissions: XINFO GROUPS, XPENDING, XREVRANGE and XTRIM on the streams trimmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

__all__ = ["Retention", "safe_trim_point", "trim"]


@dataclass(frozen=True, slots=True)
class Retention:
    """How long one stream keeps acknowledged entries."""

    stream: str
    max_age_ms: int | None = None
    """Entries older than this may go (``None``: age does not count)."""
    max_entries: int | None = None
    """Entries beyond the newest ``max_entries`` may go (``None``: length does not count)."""


def _id(raw: Any) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _after(entry: tuple[int, int]) -> tuple[int, int]:
    return entry[0], entry[1] + 1


async def safe_trim_point(redis: Redis, stream: str) -> tuple[int, int] | None:
    """The lowest id any group still needs (``None``: no group, no limit from groups)."""
    needed: list[tuple[int, int]] = []
    for group in await redis.xinfo_groups(stream):
        name = group["name"]
        needed.append(_after(_id(group["last-delivered-id"])))
        if int(group["pending"]):
            summary = await redis.xpending(stream, name)
            if summary["min"] is not None:  # all acknowledged since XINFO: none needed
                needed.append(_id(summary["min"]))
    return min(needed) if needed else None


async def _retention_point(redis: Redis, rule: Retention, now_ms: int) -> tuple[int, int] | None:
    points: list[tuple[int, int]] = []
    if rule.max_age_ms is not None:
        points.append((max(0, now_ms - rule.max_age_ms), 0))
    if rule.max_entries is not None:
        newest = await redis.xrevrange(rule.stream, count=rule.max_entries + 1) or []
        if len(newest) > rule.max_entries:
            points.append(_after(_id(newest[-1][0])))
    return max(points) if points else None


async def trim(redis: Redis, rule: Retention, now_ms: int) -> int:
    """Trim ``rule.stream`` as far as its retention and every group allow; entries removed."""
    if not await redis.exists(rule.stream):
        return 0
    point = await _retention_point(redis, rule, now_ms)
    if point is None:
        return 0
    needed = await safe_trim_point(redis, rule.stream)
    if needed is not None:
        point = min(point, needed)
    removed = await redis.xtrim(rule.stream, minid=f"{point[0]}-{point[1]}", approximate=False)
    return int(removed)
