"""The console's settings: one typed object, read from the environment once at start-up."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from token_service.redis.connection import RedisAccess

__all__ = ["ConsoleSettings"]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ConsoleSettings(RedisAccess):
    """Everything the console can be told; environment names are in the aliases."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    key_prefix: str = Field(default="tokens", min_length=1, validation_alias="TOKENS_KEY_PREFIX")
    resources: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["entities", "events", "reports"],
        validation_alias="TOKENS_RESOURCES",
    )
    host: str = Field(default="127.0.0.1", validation_alias="CONSOLE_HOST")
    port: int = Field(default=8080, ge=0, le=65535, validation_alias="CONSOLE_PORT")
    """0 picks a free port (printed at start-up)."""
    public_url: str | None = Field(default=None, validation_alias="CONSOLE_PUBLIC_URL")
    """The console's address as browsers see it (``https://...`` behind a proxy): links,
    the OpenID Connect redirect, and whether cookies are ``Secure``."""
    session_idle_minutes: int = Field(
        default=30, ge=1, le=24 * 60, validation_alias="CONSOLE_SESSION_IDLE_MINUTES"
    )
    session_max_hours: int = Field(
        default=8, ge=1, le=24 * 7, validation_alias="CONSOLE_SESSION_MAX_HOURS"
    )
    sign_in_links: bool = Field(default=False, validation_alias="CONSOLE_SIGN_IN_LINKS")
    """Accept one-time sign-in links (``make run`` turns them on)."""
    link_minutes: int = Field(default=5, ge=1, le=60, validation_alias="CONSOLE_LINK_MINUTES")
    oidc_issuer: str | None = Field(default=None, validation_alias="CONSOLE_OIDC_ISSUER")
    oidc_client_id: str | None = Field(default=None, validation_alias="CONSOLE_OIDC_CLIENT_ID")
    oidc_client_secret: SecretStr | None = Field(
        default=None, validation_alias="CONSOLE_OIDC_CLIENT_SECRET"
    )
    oidc_identity_claim: str = Field(
        default="preferred_username", validation_alias="CONSOLE_OIDC_IDENTITY_CLAIM"
    )
    """The claim that names a person: it becomes the ``actor`` of their commands."""
    oidc_groups_claim: str = Field(default="groups", validation_alias="CONSOLE_OIDC_GROUPS_CLAIM")
    oidc_admin_group: str | None = Field(default=None, validation_alias="CONSOLE_OIDC_ADMIN_GROUP")
    """Holders of this group (in ``oidc_groups_claim``) are administrators too."""
    reply_timeout_s: float = Field(
        default=5.0, gt=0, le=60, validation_alias="CONSOLE_REPLY_TIMEOUT_SECONDS"
    )
    log_level: str = Field(
        default="INFO", pattern=r"^(?i:debug|info|warning|error)$", validation_alias="LOG_LEVEL"
    )

    _split = field_validator("resources", mode="before")(_split_commas)

    @property
    def oidc_enabled(self) -> bool:
        """Whether an OpenID Connect provider is configured."""
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def secure_cookies(self) -> bool:
        """Cookies only over https: when browsers reach the console by an https address."""
        return (self.public_url or "").startswith("https://")

    def base_url(self, port: int) -> str:
        """Where browsers reach the console, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"http://{host}:{port}"
