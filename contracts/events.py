"""Events: what happened, in the past tense, on ``tokens:events`` and ``tokens:usage``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from ulid import ULID

from contracts._time import Timestamp, utc_now

__all__ = [
    "AllowlistChange",
    "AnyEvent",
    "CommandRejected",
    "DescriptionChange",
    "Event",
    "EventBase",
    "LifecycleEvent",
    "TokenChanges",
    "TokenCreated",
    "TokenExpired",
    "TokenRevoked",
    "TokenRotated",
    "TokenUpdated",
    "TokenUsed",
    "event_adapter",
]


def _new_event_id() -> str:
    return str(ULID())


class EventBase(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, hide_input_in_errors=True)

    schema_version: Literal[1] = 1
    event_id: str = Field(default_factory=_new_event_id)
    occurred_at: Timestamp = Field(default_factory=utc_now)
    actor: str
    command_id: str | None = None

    def to_json(self) -> bytes:
        """The wire form, a UTF-8 JSON object."""
        return self.model_dump_json().encode()


class TokenCreated(EventBase):
    """A token was generated."""

    type: Literal["TokenCreated"] = "TokenCreated"
    token_id: str
    name: str
    description: str | None
    scopes: list[str]
    expires_at: Timestamp | None
    allowed_cidrs: list[str] | None = None
    """Version 2.x, optional: the token's allowlist, present only when it has one."""

    def to_json(self) -> bytes:
        """The wire form; ``allowed_cidrs`` only when the token has an allowlist."""
        if self.allowed_cidrs is None:
            return self.model_dump_json(exclude={"allowed_cidrs"}).encode()
        return self.model_dump_json().encode()


class TokenRevoked(EventBase):
    """A token was revoked; its secrets no longer work."""

    type: Literal["TokenRevoked"] = "TokenRevoked"
    token_id: str
    reason: str | None


class TokenRotated(EventBase):
    """A token got a new secret; the previous one works until ``previous_valid_until``."""

    type: Literal["TokenRotated"] = "TokenRotated"
    token_id: str
    previous_valid_until: Timestamp


class _Change(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DescriptionChange(_Change):
    """The description before and after (null: none)."""

    old: str | None
    new: str | None


class AllowlistChange(_Change):
    """The allowlist before and after (empty: any address)."""

    old: list[str]
    new: list[str]


class TokenChanges(_Change):
    """What an update changed: only the fields the command named are present."""

    description: DescriptionChange | None = None
    allowed_cidrs: AllowlistChange | None = None


class TokenUpdated(EventBase):
    """A token's description or allowlist was changed (version 2.x); its secret was not.

    ``changes`` holds the old and new value of each field the command named. The service
    writes it in the same atomic step that reads the old values.
    """

    type: Literal["TokenUpdated"] = "TokenUpdated"
    token_id: str
    changes: TokenChanges = Field(default_factory=TokenChanges)


class TokenExpired(EventBase):
    """A token's expiry passed."""

    type: Literal["TokenExpired"] = "TokenExpired"
    token_id: str


class CommandRejected(EventBase):
    """A command was refused; nothing changed."""

    type: Literal["CommandRejected"] = "CommandRejected"
    token_id: str | None = None
    command_type: str
    code: str
    message: str

    def to_json(self) -> bytes:
        """The wire form; ``token_id`` is left out when no token was named."""
        if self.token_id is None:
            return self.model_dump_json(exclude={"token_id"}).encode()
        return self.model_dump_json().encode()


class TokenUsed(EventBase):
    """A gateway accepted a token ``count`` times since its last report."""

    type: Literal["TokenUsed"] = "TokenUsed"
    event_id: str = Field(default_factory=_new_event_id, min_length=1, max_length=128)
    """Chosen by the gateway; a re-sent report keeps it, and consumers count it once."""
    token_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")
    used_at: Timestamp
    count: int = Field(ge=1, le=1_000_000_000)
    gateway: str = Field(min_length=1, max_length=256)
    reporter: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_.:-]+$"
    )
    """Optional: one reporting instance of the gateway (a process, from its start).
    With ``sequence``, repeats are recognized per reporter by a sliding window."""
    sequence: int | None = Field(default=None, ge=1, le=2**46)
    """Optional, with ``reporter``: 1 for the reporter's first report, then one more for
    each new report; a re-sent report keeps its number."""

    @model_validator(mode="after")
    def _reporter_and_sequence_together(self) -> TokenUsed:
        if (self.reporter is None) != (self.sequence is None):
            raise ValueError("reporter and sequence go together")
        return self

    def to_json(self) -> bytes:
        """The wire form; ``reporter`` and ``sequence`` only when given (version 1 shape)."""
        if self.reporter is None:
            return self.model_dump_json(exclude={"reporter", "sequence"}).encode()
        return self.model_dump_json().encode()


AnyEvent = (
    TokenCreated
    | TokenRevoked
    | TokenRotated
    | TokenUpdated
    | TokenExpired
    | CommandRejected
    | TokenUsed
)
"""Every event model."""

Event = Annotated[AnyEvent, Field(discriminator="type")]
"""Any event, told apart by ``type``."""

event_adapter: TypeAdapter[AnyEvent] = TypeAdapter(Event)
"""Validates any event from JSON; used for the published JSON Schema too."""

LifecycleEvent = Annotated[
    TokenCreated | TokenRevoked | TokenRotated | TokenUpdated | TokenExpired | CommandRejected,
    Field(discriminator="type"),
]
"""What ``tokens:events`` carries: every event but ``TokenUsed``, which has a stream of its own."""
