"""The audit worker's settings: one typed object, read from the environment once."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from token_service.redis.connection import RedisAccess, default_consumer_name

__all__ = ["AuditSettings"]


class AuditSettings(RedisAccess):
    """Everything the audit worker can be told; environment names are in the aliases.

    Where Redis is and how to log in come from :class:`RedisAccess`.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    key_prefix: str = Field(default="tokens", min_length=1, validation_alias="TOKENS_KEY_PREFIX")
    token_prefix: str = Field(
        default="tok", pattern=r"^[A-Za-z0-9]{1,16}$", validation_alias="TOKENS_PREFIX"
    )
    """The prefix of the tokens the service issues: a usage entry holding one is deleted."""
    consumer_name: str = Field(
        default_factory=default_consumer_name,
        validation_alias=AliasChoices("AUDIT_CONSUMER_NAME", "consumer_name"),
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, validation_alias="AUDIT_BATCH_SIZE")
    poll_ms: int = Field(default=100, ge=1, validation_alias="AUDIT_POLL_MS")
    claim_idle_ms: int = Field(default=30_000, ge=100, validation_alias="AUDIT_CLAIM_IDLE_MS")
    max_deliveries: int = Field(default=5, ge=1, validation_alias="AUDIT_MAX_DELIVERIES")
    dedupe_hours: int = Field(default=1, ge=1, le=24 * 30, validation_alias="AUDIT_DEDUPE_HOURS")
    """How long event ids are remembered, so a repeat within this window counts once."""
    usage_skew_seconds: int = Field(
        default=300, ge=0, le=86_400, validation_alias="AUDIT_USAGE_SKEW_SECONDS"
    )
    """How far ahead of this worker's clock a ``TokenUsed.used_at`` may be; later ones park."""
    refusals_kept: int = Field(default=100, ge=1, le=10_000, validation_alias="AUDIT_REFUSALS_KEPT")
    """How many of the newest refusals naming a token its trail keeps."""
    log_level: str = Field(
        default="INFO", pattern=r"^(?i:debug|info|warning|error)$", validation_alias="LOG_LEVEL"
    )
    http_host: str = Field(default="127.0.0.1", validation_alias="AUDIT_HTTP_HOST")
    http_port: int | None = Field(default=9101, ge=0, le=65535, validation_alias="AUDIT_HTTP_PORT")
    """Where /livez, /readyz and /metrics are served; 0 picks a free port, None serves none."""
