"""tokenctl's settings, from the environment; command-line options override them."""

from __future__ import annotations

import getpass
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from token_service.redis.connection import RedisAccess

__all__ = ["CliSettings", "default_actor"]


def default_actor() -> str:
    """The login name: who acts when neither --actor nor TOKENS_ACTOR says otherwise."""
    return getpass.getuser()


class CliSettings(RedisAccess):
    """Where the service is, and what it accepts; the Redis user is usually ``operator``."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    key_prefix: str = Field(default="tokens", validation_alias="TOKENS_KEY_PREFIX")
    token_prefix: str = Field(default="tok", validation_alias="TOKENS_PREFIX")
    resources: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["entities", "events", "reports"],
        validation_alias="TOKENS_RESOURCES",
    )
    admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="TOKENS_ADMINS"
    )
    """The service's own administrators, when this environment is the service's too.

    The service lets these act besides the members of the admins set; tokenctl reads
    them only to warn that removing one from the set does not stop it.
    """
    actor: str = Field(default_factory=default_actor, validation_alias="TOKENS_ACTOR")
    publisher: str | None = Field(default=None, validation_alias="TOKENS_PUBLISHER")
    """The registered publisher to write as (wire contract version 2): commands go to
    ``<prefix>:commands:<publisher>``; unset, to version 1's shared stream."""
    timeout_s: float = Field(default=5.0, gt=0, validation_alias="TOKENS_TIMEOUT")

    @field_validator("admins", "resources", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value
