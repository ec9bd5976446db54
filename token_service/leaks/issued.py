"""Which tokens pasted into a command entry were really issued by this service.

Every entry holding something token-shaped with a valid checksum is deleted, but only a
token the service issued is worth having Redis rewrite its append-only file for: anyone
can compute checksum-valid strings, and each rewrite writes the whole data set, so a
flood of made-up tokens would otherwise keep Redis rewriting. A made-up token's XADD
leaves the file at the next rewrite, whoever asks for it.

A token was issued when its sha256 is in ``{p}:issued:<bucket>`` (kept for good, so a
revoked or expired token still counts) or ``{p}:secret:<sha256>`` exists. Redis
permissions: HEXISTS on the buckets, EXISTS on the secrets.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from redis.asyncio import Redis

from contracts.token_format import MAX_TOKEN_BODY, secret_digest
from token_service.keys import Keys

__all__ = ["any_issued", "candidates", "rewrite_wanted"]

_log = structlog.get_logger("token_service.leaks.aof")
_CHUNK = 500  # digests per round trip


def candidates(found: Iterable[str], prefix: str) -> set[str]:
    """What each token in ``found`` would be with the service's ``prefix``.

    The random part and checksum are what make a token; what stands before the underscore
    may be glued text or an escape's leftovers (``tok\\_…``), so it is not trusted.
    """
    return {f"{prefix}_{token[-MAX_TOKEN_BODY + 1 :]}" for token in found}


async def any_issued(redis: Redis, keys: Keys, tokens: Iterable[str]) -> bool:
    """True when at least one of ``tokens`` (whole token strings) was ever issued."""
    digests = sorted({secret_digest(token) for token in tokens})
    for start in range(0, len(digests), _CHUNK):
        chunk = digests[start : start + _CHUNK]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.exists(*(keys.secret(digest) for digest in chunk))
            for digest in chunk:
                pipe.hexists(*keys.issued(digest))
            if any(await pipe.execute()):
                return True
    return False


async def rewrite_wanted(
    redis: Redis, keys: Keys, prefix: str, found: Iterable[tuple[str, ...]]
) -> bool:
    """Whether deleted entries, with the tokens ``found`` in each, call for a rewrite."""
    per_entry = list(found)
    if any(not tokens for tokens in per_entry):
        return True  # refused for a token the scan did not name: rewrite rather than guess
    tokens = candidates((token for tokens in per_entry for token in tokens), prefix)
    try:
        return await any_issued(redis, keys, tokens)
    except Exception as exc:  # cannot tell: rewrite rather than keep an issued one on disk
        _log.warning("issued_token_check_failed", error=str(exc))
        return True
