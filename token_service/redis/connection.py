"""How a process reaches Redis: where, as which user, over TLS or not.

Every Redis client in the project is built here (and every FastStream broker, in
:mod:`token_service.redis.subscription`), from one
:class:`RedisAccess`, so that a user, a password or a CA file set in the environment
holds for all of a process's connections alike. Each component may run as its own
Redis user (see ``token_service.acl``); ``rediss://`` URLs connect over TLS.
"""

from __future__ import annotations

import inspect
import os
import socket
from pathlib import Path
from typing import Any

import redis
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio import Redis

__all__ = [
    "RedisAccess",
    "default_consumer_name",
    "redis_client",
    "sync_redis_client",
]


def default_consumer_name() -> str:
    """hostname-pid: unique per process, so no two consumers share a pending list."""
    return f"{socket.gethostname()}-{os.getpid()}"


class RedisAccess(BaseSettings):
    """The connection part of every process's settings; environment names in the aliases."""

    # A rejected value may be a password or a URL holding one: errors name the field only.
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    """``redis://host:port/db``, or ``rediss://`` for TLS."""
    redis_username: str | None = Field(default=None, validation_alias="REDIS_USERNAME")
    """The ACL user to authenticate as; overrides a user named in the URL."""
    redis_password: SecretStr | None = Field(default=None, validation_alias="REDIS_PASSWORD")
    """Its password; overrides one in the URL. Never printed (``SecretStr``)."""
    redis_tls_ca_file: Path | None = Field(default=None, validation_alias="REDIS_TLS_CA_FILE")
    """The CA that signed the server's certificate, when it is not a system-trusted one."""
    redis_tls_cert_file: Path | None = Field(default=None, validation_alias="REDIS_TLS_CERT_FILE")
    """This client's certificate, for a server that asks clients for one."""
    redis_tls_key_file: Path | None = Field(default=None, validation_alias="REDIS_TLS_KEY_FILE")
    """The key of ``redis_tls_cert_file``."""

    @model_validator(mode="after")
    def _cert_comes_with_key(self) -> RedisAccess:
        if (self.redis_tls_cert_file is None) != (self.redis_tls_key_file is None):
            raise ValueError("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together")
        return self

    @model_validator(mode="after")
    def _tls_files_need_a_tls_url(self) -> RedisAccess:
        # Files given with a redis:// URL would be ignored and the link left in the clear:
        # a setting that silently weakens what it seems to promise is refused instead.
        files = (self.redis_tls_ca_file, self.redis_tls_cert_file, self.redis_tls_key_file)
        if self.redis_url is not None and not self.uses_tls and any(files):
            raise ValueError("REDIS_TLS_* files are set but REDIS_URL is not rediss://")
        return self

    @property
    def uses_tls(self) -> bool:
        """Whether the URL asks for TLS (``rediss://``)."""
        return (self.redis_url or "").startswith("rediss://")

    def access_fields(self) -> dict[str, Any]:
        """The connection fields alone, to build another process's settings from these."""
        return {name: getattr(self, name) for name in RedisAccess.model_fields}

    def connection_options(self) -> dict[str, Any]:
        """Keyword arguments that redis-py's connection pool (and FastStream's) accept."""
        options: dict[str, Any] = {}
        if self.redis_username is not None:
            options["username"] = self.redis_username
        if self.redis_password is not None:
            options["password"] = self.redis_password.get_secret_value()
        if self.uses_tls:
            if self.redis_tls_ca_file is not None:
                options["ssl_ca_certs"] = str(self.redis_tls_ca_file)
            if self.redis_tls_cert_file is not None and self.redis_tls_key_file is not None:
                options["ssl_certfile"] = str(self.redis_tls_cert_file)
                options["ssl_keyfile"] = str(self.redis_tls_key_file)
        return options

    def required_url(self) -> str:
        """The URL, or a clear error for a process that cannot start without one."""
        if self.redis_url is None:
            raise ValueError("REDIS_URL is required here")
        return self.redis_url


def _quiet_handshake() -> dict[str, Any]:
    # On connecting, redis-py sends CLIENT SETINFO (its name and version) and, from version
    # 7, CLIENT MAINT_NOTIFICATIONS. No ACL user of ours may run either (Redis 7.0 knows
    # neither), and from Redis 7.2 each refusal lands in the ACL log, among the refusals
    # that matter. Older redis-py versions take `lib_name` and `lib_version` instead.
    parameters = inspect.signature(Redis.__init__).parameters
    options: dict[str, Any] = (
        {"driver_info": None}
        if "driver_info" in parameters
        else {"lib_name": None, "lib_version": None}
    )
    if "maint_notifications_config" in parameters:
        from redis.maint_notifications import MaintNotificationsConfig

        options["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    return options


_QUIET_HANDSHAKE = _quiet_handshake()


def redis_client(access: RedisAccess, **options: Any) -> Redis:
    """An asyncio client; ``options`` add to redis-py's (``decode_responses``, timeouts)."""
    return Redis.from_url(
        access.required_url(),
        **access.connection_options(),
        **{**_QUIET_HANDSHAKE, **options},
    )


def sync_redis_client(access: RedisAccess, **options: Any) -> redis.Redis:
    """A blocking client, for start-up chores outside the event loop."""
    return redis.Redis.from_url(
        access.required_url(),
        **access.connection_options(),
        **{**_QUIET_HANDSHAKE, **options},
    )
