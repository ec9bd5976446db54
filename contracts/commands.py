"""Commands: what an administrator asks the token service to do."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from contracts._time import Timestamp
from contracts.networks import AllowedCidrs
from contracts.scopes import Scope
from contracts.token_format import find_tokens

__all__ = [
    "COMMAND_TYPES",
    "LEAK_ERROR",
    "AnyCommand",
    "Command",
    "CommandBase",
    "GenerateToken",
    "RevokeToken",
    "RotateToken",
    "UpdateToken",
    "command_adapter",
]


LEAK_ERROR = "pasted_secret"
"""The pydantic error type of a field refused because it holds a token."""


def _no_secret(text: str) -> str:
    # A pasted token would otherwise be stored, logged and sent on in events.
    if find_tokens(text, glued=True):
        raise PydanticCustomError(
            LEAK_ERROR, "holds an API token; never send a secret in a command"
        )
    return text


NoSecret = AfterValidator(_no_secret)
CommandId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x20-\x7e]+$"), NoSecret]
Actor = Annotated[
    str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$"), NoSecret
]
Channel = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$"), NoSecret]
TokenId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$"), NoSecret]
TokenName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"), NoSecret
]
MAX_GRACE_SECONDS = 604_800


class CommandBase(BaseModel):
    """Fields every command carries."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, hide_input_in_errors=True)

    command_id: CommandId
    actor: Actor
    reply_to: Channel | None = None


class GenerateToken(CommandBase):
    """Issue a new token for one integration."""

    type: Literal["GenerateToken"] = "GenerateToken"
    name: TokenName
    description: Annotated[str, Field(max_length=1024), NoSecret] | None = None
    scopes: list[Scope] = Field(min_length=1, max_length=50)
    expires_at: Timestamp | None = None
    allowed_cidrs: AllowedCidrs | None = None
    """Version 2.x, optional: the client networks the token may be used from; absent or
    empty means any address."""

    @field_validator("scopes")
    @classmethod
    def _distinct(cls, scopes: list[str]) -> list[str]:
        if len(set(scopes)) != len(scopes):
            raise ValueError("scopes must be distinct")
        return scopes


class RevokeToken(CommandBase):
    """Stop a token at once, everywhere."""

    type: Literal["RevokeToken"] = "RevokeToken"
    token_id: TokenId
    reason: Annotated[str, Field(max_length=512), NoSecret] | None = None


class RotateToken(CommandBase):
    """Issue a new secret for a token; the old one works for ``grace_seconds`` more."""

    type: Literal["RotateToken"] = "RotateToken"
    token_id: TokenId
    grace_seconds: int = Field(default=0, ge=0, le=MAX_GRACE_SECONDS)


class UpdateToken(CommandBase):
    """Change a token's description or allowlist (version 2.x); its secret stays the same.

    A field left out (or null) is left as it is: an empty ``description`` removes it, an
    empty ``allowed_cidrs`` lets the token be used from any address again.
    """

    type: Literal["UpdateToken"] = "UpdateToken"
    token_id: TokenId
    description: Annotated[str, Field(max_length=1024), NoSecret] | None = None
    allowed_cidrs: AllowedCidrs | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> UpdateToken:
        if self.description is None and self.allowed_cidrs is None:
            raise ValueError("give description or allowed_cidrs (or both)")
        return self


AnyCommand = GenerateToken | RevokeToken | RotateToken | UpdateToken
"""Every command model."""

Command = Annotated[AnyCommand, Field(discriminator="type")]
"""Any command, told apart by ``type``."""

COMMAND_TYPES: dict[str, type[CommandBase]] = {
    "GenerateToken": GenerateToken,
    "RevokeToken": RevokeToken,
    "RotateToken": RotateToken,
    "UpdateToken": UpdateToken,
}

command_adapter: TypeAdapter[AnyCommand] = TypeAdapter(Command)
"""Validates any command from JSON; used for the published JSON Schema too."""
