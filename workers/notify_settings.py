"""The notifier's settings: one typed object, read from the environment once."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from token_service.redis.connection import RedisAccess, default_consumer_name

__all__ = ["DEFAULT_EVENT_TYPES", "NotifySettings", "Webhook"]

DEFAULT_EVENT_TYPES = ("TokenRevoked", "TokenExpiring", "TokenRotationDue", "TokenRevokedByPolicy")
"""TokenRevoked exists; the others are named ahead of the events that will carry them."""


class Webhook(BaseModel):
    """One receiver of notices."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    """Names its delivery records and keys: keep it when the URL changes."""
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    format: Literal["slack", "json"] = "json"
    """``slack``: ``{"text": "..."}`` as Slack's incoming webhooks take it; ``json``: the
    event itself, as on ``tokens:events``."""
    secret: SecretStr | None = Field(default=None, min_length=16)
    """Signs this webhook's deliveries instead of ``NOTIFY_SECRET`` (16 characters at least)."""


class NotifySettings(RedisAccess):
    """Everything the notifier can be told; environment names are in the aliases.

    ``NOTIFY_WEBHOOKS`` is JSON: ``[{"name": "ops", "url": "https://…", "format":
    "slack"}]``. Where Redis is and how to log in come from :class:`RedisAccess`.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    key_prefix: str = Field(default="tokens", min_length=1, validation_alias="TOKENS_KEY_PREFIX")
    webhooks: list[Webhook] = Field(default_factory=list, validation_alias="NOTIFY_WEBHOOKS")
    secret: SecretStr | None = Field(default=None, validation_alias="NOTIFY_SECRET")
    """The HMAC-SHA256 key deliveries are signed with (``Token-Service-Signature``)."""
    event_types: list[str] = Field(
        default=list(DEFAULT_EVENT_TYPES), validation_alias="NOTIFY_EVENT_TYPES"
    )
    """Which events of ``tokens:events`` go out, by ``type``; the others are passed over."""
    consumer_name: str = Field(
        default_factory=default_consumer_name,
        validation_alias=AliasChoices("NOTIFY_CONSUMER_NAME", "consumer_name"),
    )
    batch_size: int = Field(default=100, ge=1, le=1000, validation_alias="NOTIFY_BATCH_SIZE")
    poll_ms: int = Field(default=500, ge=1, validation_alias="NOTIFY_POLL_MS")
    claim_idle_ms: int = Field(default=60_000, ge=100, validation_alias="NOTIFY_CLAIM_IDLE_MS")
    """Events another consumer read and left unacknowledged this long are taken over."""
    timeout_s: float = Field(default=10.0, gt=0, le=120, validation_alias="NOTIFY_TIMEOUT_S")
    """One delivery's deadline; past it the attempt failed."""
    retry_base_s: float = Field(default=1.0, gt=0, validation_alias="NOTIFY_RETRY_BASE_S")
    """The wait after a first failed attempt; it doubles with each further one."""
    retry_max_s: float = Field(default=300.0, gt=0, validation_alias="NOTIFY_RETRY_MAX_S")
    """The longest wait between two attempts."""
    give_up_after_s: float = Field(
        default=86_400.0, gt=0, validation_alias="NOTIFY_GIVE_UP_AFTER_S"
    )
    """A webhook still failing this long after the first attempt: the notice goes to the
    dead letters (reason and webhook said) and the event is let go for that webhook."""
    delivered_days: int = Field(default=30, ge=1, le=400, validation_alias="NOTIFY_DELIVERED_DAYS")
    """How long a delivered marker is kept (longer than the events stream's retention
    is needless: no older event can be read again)."""
    max_in_flight: int = Field(default=1000, ge=1, validation_alias="NOTIFY_MAX_IN_FLIGHT")
    """Events held at once while receivers fail; more stay unread in the stream."""
    log_level: str = Field(
        default="INFO", pattern=r"^(?i:debug|info|warning|error)$", validation_alias="LOG_LEVEL"
    )
    http_host: str = Field(default="127.0.0.1", validation_alias="NOTIFY_HTTP_HOST")
    http_port: int | None = Field(default=9104, ge=0, le=65535, validation_alias="NOTIFY_HTTP_PORT")
    """Where /livez, /readyz and /metrics are served; 0 picks a free port, None serves none."""

    @model_validator(mode="after")
    def _every_webhook_is_signed(self) -> NotifySettings:
        if self.secret is not None and len(self.secret.get_secret_value()) < 16:
            if self.secret.get_secret_value():
                raise ValueError("NOTIFY_SECRET: at least 16 characters")
            self.secret = None  # an empty variable (compose's default) is no secret
        names = [hook.name for hook in self.webhooks]
        if len(set(names)) != len(names):
            raise ValueError("NOTIFY_WEBHOOKS: each webhook needs a name of its own")
        if self.secret is None and any(hook.secret is None for hook in self.webhooks):
            raise ValueError("NOTIFY_SECRET is required: every delivery is signed")
        return self

    def secret_of(self, hook: Webhook) -> bytes:
        """The key that signs ``hook``'s deliveries."""
        secret = hook.secret or self.secret
        assert secret is not None  # the validator saw to it
        return secret.get_secret_value().encode()
