"""Replies: the one answer each command gets."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from contracts.tokens import TokenView

__all__ = ["CommandReply", "Durability", "ErrorCode", "ErrorInfo"]


class ErrorCode(StrEnum):
    """Why a command was not applied."""

    INVALID = "invalid"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INTERNAL = "internal"


class ErrorInfo(BaseModel):
    """A rejection the caller can act on: a code, a message and the fields at fault."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, hide_input_in_errors=True)

    code: ErrorCode
    message: str
    fields: dict[str, str] | None = None


class Durability(BaseModel):
    """How many replicas had the change when the reply was sent (where replicas are awaited).

    ``confirmed < wanted`` means the wait timed out: the change stands on the primary but
    a failover now could lose it. Sending the same command (same ``command_id``) again is
    safe; its reply (``duplicate``) says again how many replicas have it.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    wanted: int
    """Replicas the service waits for (``TOKENS_WAIT_REPLICAS``)."""
    confirmed: int
    """Replicas that confirmed within ``TOKENS_WAIT_TIMEOUT_MS``."""

    @property
    def met(self) -> bool:
        """Whether enough replicas confirmed."""
        return self.confirmed >= self.wanted


class CommandReply(BaseModel):
    """The outcome of one command; ``secret`` only in the first reply that mints one."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, hide_input_in_errors=True)

    command_id: str | None
    ok: bool
    duplicate: bool = False
    token: TokenView | None = None
    secret: str | None = None
    error: ErrorInfo | None = None
    durability: Durability | None = None
    """Set on ``ok`` replies where the service waits for replicas; absent otherwise."""

    def to_json(self) -> bytes:
        """The wire form: absent members are left out rather than sent as null."""
        exclude: dict[str, object] = {
            name: True
            for name in ("token", "secret", "error", "durability")
            if getattr(self, name) is None
        }
        if self.error is not None and self.error.fields is None:
            exclude["error"] = {"fields": True}
        return self.model_dump_json(exclude=exclude).encode()  # type: ignore[arg-type]
