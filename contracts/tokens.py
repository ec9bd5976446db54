"""The token as clients see it: never the secret, never its hash."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contracts._time import Timestamp

__all__ = ["TokenStatus", "TokenView"]


class TokenStatus(StrEnum):
    """Where a token is in its life."""

    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


class TokenView(BaseModel):
    """What a reply, a listing or the CLI shows of one token."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, hide_input_in_errors=True)

    id: str
    name: str
    description: str | None = None
    scopes: list[str]
    status: TokenStatus
    created_at: Timestamp
    created_by: str
    expires_at: Timestamp | None = None
    revoked_at: Timestamp | None = None
    revoked_by: str | None = None
    rotated_at: Timestamp | None = None
    last_used_at: Timestamp | None = None
    hint: str
    allowed_cidrs: list[str] = Field(default_factory=list)
    """Version 2.x: the networks the token may be used from; empty means any address."""
