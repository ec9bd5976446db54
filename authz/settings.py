"""The auth endpoint's settings: one typed object, read from the environment once.

Where Redis is and how to log in (``REDIS_URL``, ``REDIS_USERNAME``, ``REDIS_PASSWORD``,
``REDIS_TLS_*``) come from :class:`~token_service.redis.connection.RedisAccess`; the
endpoint should log in as the ``gateway`` user, which may only read secret hashes and
report use.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from token_service.redis.connection import RedisAccess

__all__ = ["AuthzSettings"]

_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$"


class AuthzSettings(RedisAccess):
    """Everything the auth endpoint can be told; environment names are in the aliases."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    host: str = Field(default="127.0.0.1", validation_alias="AUTHZ_HOST")
    """Where the check listens (proxies call it)."""
    port: int = Field(default=9102, ge=0, le=65535, validation_alias="AUTHZ_PORT")
    """Its port; 0 picks a free one."""
    path_prefix: str = Field(
        default="/check", pattern=r"^/[A-Za-z0-9/_.-]*$", validation_alias="AUTHZ_PATH_PREFIX"
    )
    """Where the check is mounted; Envoy appends the original path to it."""
    routes_file: Path | None = Field(default=None, validation_alias="AUTHZ_ROUTES_FILE")
    """The route table (TOML); without one every request is refused."""
    token_header: str | None = Field(
        default=None, pattern=_HEADER_NAME, validation_alias="AUTHZ_TOKEN_HEADER"
    )
    """A header that holds the bare token, read when ``Authorization: Bearer`` is absent."""
    scope_header: str | None = Field(
        default=None, pattern=_HEADER_NAME, validation_alias="AUTHZ_SCOPE_HEADER"
    )
    """A header the proxy sets to the scope a request needs; it takes precedence over the
    routes. Off by default: only set it when the proxy always overwrites the client's."""
    client_ip_header: str | None = Field(
        default=None, pattern=_HEADER_NAME, validation_alias="AUTHZ_CLIENT_IP_HEADER"
    )
    """The header the proxy sets to the client's address (``X-Real-IP``, or
    ``X-Forwarded-For``), for tokens with an allowlist. Only name a header the proxy
    always sets or appends to; see :mod:`authz.clients`. Unset: no address is known and
    tokens with an allowlist are refused."""
    client_ip_hops: int = Field(default=1, ge=1, le=16, validation_alias="AUTHZ_CLIENT_IP_HOPS")
    """Which entry of that header to believe, counted from the right: the number of
    trusted proxies that each append one (1: the last entry)."""
    realm: str = Field(default="api", validation_alias="AUTHZ_REALM")
    """The ``realm`` of the ``WWW-Authenticate: Bearer`` challenge."""
    gateway_name: str = Field(
        default="authz", min_length=1, max_length=256, validation_alias="AUTHZ_GATEWAY_NAME"
    )
    """This endpoint's name in its ``TokenUsed`` reports (``gateway`` and ``actor``)."""
    timeout_s: float = Field(default=1.0, gt=0, le=30, validation_alias="AUTHZ_REDIS_TIMEOUT_S")
    """A check's deadline for Redis; past it the check answers 503."""
    read_from_replicas: bool = Field(default=False, validation_alias="AUTHZ_READ_FROM_REPLICAS")
    """Through Sentinel, read secrets from one replica (use reports still go to the
    primary): checks keep being answered while the primary is down or failing over."""
    cache: bool = Field(default=True, validation_alias="AUTHZ_CACHE")
    """Keep verdicts in the Verifier's cache, kept honest by Redis (CLIENT TRACKING)."""
    cache_max_entries: int = Field(
        default=100_000, ge=1, validation_alias="AUTHZ_CACHE_MAX_ENTRIES"
    )
    """Secret keys the cache keeps at most."""
    cache_max_age_s: float = Field(default=60.0, gt=0, validation_alias="AUTHZ_CACHE_MAX_AGE_S")
    """No verdict is served older than this, whatever else fails."""
    idle_timeout_s: float = Field(default=75.0, gt=0, validation_alias="AUTHZ_IDLE_TIMEOUT_S")
    """A connection that completes no request for this long is closed."""
    key_prefix: str = Field(default="tokens", min_length=1, validation_alias="TOKENS_KEY_PREFIX")
    token_prefix: str = Field(
        default="tok", pattern=r"^[A-Za-z0-9]{1,16}$", validation_alias="TOKENS_PREFIX"
    )
    log_level: str = Field(
        default="INFO", pattern=r"^(?i:debug|info|warning|error)$", validation_alias="LOG_LEVEL"
    )
    http_host: str = Field(default="127.0.0.1", validation_alias="AUTHZ_HTTP_HOST")
    http_port: int | None = Field(default=9103, ge=0, le=65535, validation_alias="AUTHZ_HTTP_PORT")
    """Where /livez, /readyz and /metrics are served; 0 picks a free port, None serves none."""
