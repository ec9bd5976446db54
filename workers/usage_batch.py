"""Sorting one batch of ``tokens:usage``: what to fold, skip, dead-letter or delete.

Each entry is looked at alone, and nothing it holds can raise out of here: an entry that
cannot be read for any reason is dead-lettered with the reason, and every other entry of
the batch goes on. An entry holding anything token-shaped (a gateway reporting the
presented token as ``token_id``, say) is dead-lettered with the token masked and then
deleted from the stream, before anything else is asked of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from token_service.leaks import secrets_in
from token_service.redis.groups import Parked
from token_service.redis.subscription import StreamEntry
from workers.usage_events import Fold, Skip, judge, read_usage

__all__ = ["LEAK_REASON", "UsageBatch"]

LEAK_REASON = "the entry holds an API token"
"""Why an entry holding something token-shaped is dead-lettered (and deleted)."""
_log = structlog.get_logger("workers.audit")


@dataclass(slots=True)
class UsageBatch:
    """One batch of usage entries, sorted; ``now_ms`` is the worker's clock when it came."""

    now_ms: int
    skew_ms: int
    folds: list[Fold] = field(default_factory=list)
    acks: list[str] = field(default_factory=list)
    """Entries folded or skipped: the fold function acknowledges them."""
    skipped: int = 0
    """Events for a token that cannot exist, acknowledged without asking Redis."""
    dead: list[Parked] = field(default_factory=list)
    leaked: list[Parked] = field(default_factory=list)
    """Dead-lettered, then deleted from the stream: they hold something token-shaped."""
    secrets: list[tuple[str, ...]] = field(default_factory=list)
    """The tokens found in each of ``leaked`` (empty when the scan itself failed)."""

    def add(self, entry: StreamEntry, given_up: str | None = None) -> None:
        """Sort one entry; ``given_up`` says why it was delivered too often, if it was."""
        raw_id, fields = entry
        entry_id = raw_id.decode()
        if self._holds_token(entry_id, fields):
            return
        if given_up is not None:
            self.dead.append(Parked(entry_id, fields, given_up))
            return
        try:
            read = read_usage(fields.get(b"data", b""))
            verdict = read if isinstance(read, str) else judge(read, self.now_ms, self.skew_ms)
        except Exception as exc:  # this entry alone: the rest of the batch goes on
            _log.exception("usage_entry_unreadable", entry_id=entry_id)
            verdict = f"could not be read: {type(exc).__name__}"
        if isinstance(verdict, str):
            self.dead.append(Parked(entry_id, fields, verdict))
        elif isinstance(verdict, Skip):
            self.skipped += 1
            self.acks.append(entry_id)
        else:
            self.folds.append(verdict)
            self.acks.append(entry_id)

    def _holds_token(self, entry_id: str, fields: dict[bytes, bytes]) -> bool:
        try:
            found = tuple(secrets_in(fields))
        except Exception:  # delete rather than risk keeping a token
            _log.exception("secret_scan_failed", stream="usage", entry_id=entry_id)
            found = ()
        else:
            if not found:
                return False
        self.leaked.append(Parked(entry_id, fields, LEAK_REASON))
        self.secrets.append(found)
        return True

    @property
    def newest_ms(self) -> int:
        """The latest ``used_at`` among the folds (0 when there is none)."""
        return max((int(fold[2]) for fold in self.folds), default=0)
