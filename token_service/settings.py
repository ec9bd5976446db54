"""The token service's settings: one typed object, read from the environment once at start-up."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from token_service.keys import Keys
from token_service.publishers import SHARED, Publisher, Source, parse_publisher
from token_service.redis.connection import RedisAccess, default_consumer_name
from token_service.redis.retention import Retention

__all__ = ["ServiceSettings"]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ServiceSettings(RedisAccess):
    """Everything the command handler can be told; environment names are in the aliases.

    Where Redis is and how to log in come from :class:`RedisAccess`.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    key_prefix: str = Field(default="tokens", min_length=1, validation_alias="TOKENS_KEY_PREFIX")
    token_prefix: str = Field(
        default="tok", pattern=r"^[A-Za-z0-9]{1,16}$", validation_alias="TOKENS_PREFIX"
    )
    admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="TOKENS_ADMINS"
    )
    resources: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["entities", "events", "reports"],
        validation_alias="TOKENS_RESOURCES",
    )
    consumer_name: str = Field(
        default_factory=default_consumer_name,
        validation_alias=AliasChoices("TOKENS_CONSUMER_NAME", "consumer_name"),
    )
    claim_idle_ms: int = Field(default=30_000, ge=100, validation_alias="TOKENS_CLAIM_IDLE_MS")
    max_deliveries: int = Field(default=5, ge=1, validation_alias="TOKENS_MAX_DELIVERIES")
    command_ttl_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, validation_alias="TOKENS_COMMAND_TTL_SECONDS"
    )
    batch_size: int = Field(default=200, ge=1, le=10_000, validation_alias="TOKENS_BATCH_SIZE")
    poll_ms: int = Field(default=100, ge=1, validation_alias="TOKENS_POLL_MS")
    expiry_sweep_ms: int = Field(default=1000, ge=10, validation_alias="TOKENS_EXPIRY_SWEEP_MS")
    log_level: str = Field(
        default="INFO", pattern=r"^(?i:debug|info|warning|error)$", validation_alias="LOG_LEVEL"
    )
    http_host: str = Field(default="127.0.0.1", validation_alias="TOKENS_HTTP_HOST")
    http_port: int | None = Field(default=9100, ge=0, le=65535, validation_alias="TOKENS_HTTP_PORT")
    """Where /livez, /readyz and /metrics are served; 0 picks a free port, None serves none."""
    publishers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="TOKENS_PUBLISHERS"
    )
    """Who may write commands: ``name`` (acts as itself) or ``name:delegating`` (acts for
    any administrator), comma-separated; each writes to ``<prefix>:commands:<name>``."""
    trust_shared_stream: bool = Field(default=False, validation_alias="TOKENS_TRUST_SHARED_STREAM")
    """Read version 1's shared ``<prefix>:commands``, whose writers may act as anyone."""
    retention_every_s: float = Field(default=60, gt=0, validation_alias="TOKENS_RETENTION_EVERY_S")
    """How often the streams are trimmed to their retention."""
    commands_retention_s: int = Field(
        default=7 * 24 * 3600, ge=0, validation_alias="TOKENS_COMMANDS_RETENTION_SECONDS"
    )
    """How long acknowledged commands stay in their streams."""
    usage_retention_s: int = Field(
        default=600, ge=0, validation_alias="TOKENS_USAGE_RETENTION_SECONDS"
    )
    """How long folded ``TokenUsed`` entries stay in ``tokens:usage``."""
    usage_retention_entries: int | None = Field(
        default=None, ge=0, validation_alias="TOKENS_USAGE_RETENTION_ENTRIES"
    )
    """At most this many folded entries stay in ``tokens:usage`` (unset: no count limit)."""
    events_retention_days: int = Field(
        default=400, ge=1, validation_alias="TOKENS_EVENTS_RETENTION_DAYS"
    )
    """How long the audit history stays in ``tokens:events``."""
    dead_letter_retention_days: int = Field(
        default=30, ge=1, validation_alias="TOKENS_DEAD_LETTER_RETENTION_DAYS"
    )
    """How long parked entries stay in ``tokens:dead-letter``."""
    wait_replicas: int | None = Field(
        default=None, ge=0, le=16, validation_alias="TOKENS_WAIT_REPLICAS"
    )
    """Replicas a change must reach before its ``ok`` reply goes out (Redis WAIT); unset:
    1 through Sentinel (a deployment with replicas), 0 (no wait) otherwise."""
    wait_timeout_ms: int = Field(
        default=1000, ge=1, le=60_000, validation_alias="TOKENS_WAIT_TIMEOUT_MS"
    )
    """How long to wait for them; past it the reply goes out saying how many confirmed."""
    otel_enabled: bool = Field(default=False, validation_alias="TOKENS_OTEL_ENABLED")
    """Trace command handling with OpenTelemetry (needs the ``otel`` extra)."""

    _split = field_validator("admins", "resources", "publishers", mode="before")(_split_commas)

    @field_validator("wait_replicas", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        # compose passes `${TOKENS_WAIT_REPLICAS:-}`: empty means "as the deployment is"
        return None if value == "" else value

    @field_validator("publishers")
    @classmethod
    def _known_shape(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_publisher(text)
        return value

    @property
    def replicas_to_wait_for(self) -> int:
        """``TOKENS_WAIT_REPLICAS``, or its default for where Redis is."""
        if self.wait_replicas is not None:
            return self.wait_replicas
        return 1 if self.uses_sentinel else 0

    def retention(self) -> list[Retention]:
        """Every stream's retention; a group's unacknowledged entries are never trimmed."""
        keys, day_ms = Keys(self.key_prefix), 24 * 3600 * 1000
        commands = [
            Retention(source.stream, max_age_ms=self.commands_retention_s * 1000)
            for source in self.sources()
        ]
        return [
            *commands,
            Retention(
                keys.usage,
                max_age_ms=self.usage_retention_s * 1000,
                max_entries=self.usage_retention_entries,
            ),
            Retention(keys.events, max_age_ms=self.events_retention_days * day_ms),
            Retention(keys.dead_letter, max_age_ms=self.dead_letter_retention_days * day_ms),
        ]

    def sources(self) -> list[Source]:
        """Every command stream this service reads, version 1's shared one first if trusted."""
        keys = Keys(self.key_prefix)
        registered = [parse_publisher(text) for text in self.publishers]
        shared = [Publisher(SHARED)] if self.trust_shared_stream else []
        return [Source.of(publisher, keys) for publisher in [*shared, *registered]]
