"""The key families of the layout (``token_service.keys``), and the bytes each holds."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.stack import Stack

__all__ = ["FAMILIES", "Family", "family_bytes"]

_CHUNK = 1_000


@dataclass(frozen=True, slots=True)
class Family:
    """Keys of one kind, by a pattern on their names."""

    label: str
    pattern: str
    """A regular expression for the part after ``<prefix>:``."""
    core: bool = False


FAMILIES = (
    Family("token record", r"token:[^:]+", core=True),
    Family("secret hash (contract)", r"secret:.*", core=True),
    Family("grace secrets zset", r"token:[^:]+:grace", core=True),
    Family("issued buckets", r"issued:.*", core=True),
    Family("ids list", r"ids", core=True),
    Family("name buckets", r"names:.*", core=True),
    Family("expiries", r"expiries", core=True),
    Family("layout marker", r"layout"),
    Family("refusals", r"token:[^:]+:refusals"),
    Family("reporter windows", r"reporter:.*"),
    Family("daily counts", r"token:[^:]+:daily"),
    Family("audit trail", r"token:[^:]+:audit"),
    Family("seen event ids", r"seen:.*"),
    Family("command records", r"command:.*"),
    Family("stream: events", r"events"),
    Family("stream: commands", r"commands(:.*)?"),
    Family("stream: usage", r"usage"),
    Family("stream: dead-letter", r"dead-letter"),
)
"""Every key family of the layout (``token_service.keys``); anything else is ``other``."""


async def family_bytes(stack: Stack) -> dict[str, tuple[int, int]]:
    """``MEMORY USAGE <key> SAMPLES 0`` of every key, summed by family: label -> (keys, bytes)."""
    prefix = re.escape(stack.keys.prefix)
    patterns = [(f.label, re.compile(f"{prefix}:(?:{f.pattern})")) for f in FAMILIES]
    totals: dict[str, tuple[int, int]] = {}
    batch: list[str] = []

    async def flush() -> None:
        async with stack.redis.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.memory_usage(key, samples=0)
            sizes = await pipe.execute()
        for key, size in zip(batch, sizes, strict=True):
            label = next((lb for lb, p in patterns if p.fullmatch(key)), "other")
            keys, total = totals.get(label, (0, 0))
            totals[label] = (keys + 1, total + int(size or 0))
        batch.clear()

    async for key in stack.redis.scan_iter(count=5_000):
        batch.append(key)
        if len(batch) >= _CHUNK:
            await flush()
    await flush()
    return totals
