"""How a process reaches Redis: where, as which user, over TLS or not.

Every Redis client in the project is built here (and every FastStream broker, in
:mod:`token_service.redis.subscription`), from one
:class:`RedisAccess`, so that a user, a password or a CA file set in the environment
holds for all of a process's connections alike. Each component may run as its own
Redis user (see ``token_service.acl``); ``rediss://`` URLs connect over TLS.

With ``REDIS_SENTINELS`` set, the address comes from Sentinel instead
(:mod:`token_service.redis.sentinel`): the URL, if any, still gives the scheme, the
database and credentials, but not the host.
"""

from __future__ import annotations

import inspect
import os
import socket
from pathlib import Path
from typing import Annotated, Any

import redis
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from redis.asyncio import Redis
from redis.asyncio.connection import parse_url

from token_service.redis import sentinel

__all__ = [
    "RedisAccess",
    "default_consumer_name",
    "redis_client",
    "replica_redis_client",
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
    redis_sentinels: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="REDIS_SENTINELS"
    )
    """``host:port`` of each sentinel, comma-separated; set, the primary is found through
    them (and followed when they fail over) rather than at the URL's host."""
    redis_sentinel_master: str = Field(
        default="mymaster", min_length=1, validation_alias="REDIS_SENTINEL_MASTER"
    )
    """The name the sentinels monitor the primary under."""
    redis_sentinel_username: str | None = Field(
        default=None, validation_alias="REDIS_SENTINEL_USERNAME"
    )
    """The sentinels' own ACL user, when they ask for one."""
    redis_sentinel_password: SecretStr | None = Field(
        default=None, validation_alias="REDIS_SENTINEL_PASSWORD"
    )
    """The sentinels' password (``requirepass`` in sentinel.conf)."""

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _split_addresses(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _host_and_port(cls, value: list[str]) -> list[str]:
        for address in value:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"a sentinel is host:port, not {address!r}")
        return value

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

    @property
    def uses_sentinel(self) -> bool:
        """Whether the primary is found through Sentinel."""
        return bool(self.redis_sentinels)

    @property
    def configured(self) -> bool:
        """Whether anything says where Redis is (a URL, or sentinels)."""
        return self.redis_url is not None or self.uses_sentinel

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """The sentinels as ``(host, port)`` pairs."""
        pairs = [address.rpartition(":") for address in self.redis_sentinels]
        return [(host.strip("[]"), int(port)) for host, _, port in pairs]

    def sentinel_options(self) -> dict[str, Any]:
        """How to log in to the sentinels themselves (TLS as for Redis)."""
        options: dict[str, Any] = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
        options.update(_QUIET_HANDSHAKE)
        if self.redis_sentinel_username is not None:
            options["username"] = self.redis_sentinel_username
        if self.redis_sentinel_password is not None:
            options["password"] = self.redis_sentinel_password.get_secret_value()
        if self.uses_tls:
            tls = self.connection_options()
            options["ssl"] = True
            options.update({k: v for k, v in tls.items() if k.startswith("ssl_")})
        return options

    def required_url(self) -> str:
        """The URL, or a clear error for a process that cannot start without one.

        Through Sentinel the URL is optional: its host is never used.
        """
        if self.redis_url is None:
            if self.uses_sentinel:
                return "redis://sentinel-managed/0"
            raise ValueError("REDIS_URL (or REDIS_SENTINELS) is required here")
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


def _sentinel_managed(access: RedisAccess, options: dict[str, Any]) -> dict[str, Any]:
    # The URL's database and credentials hold; its host and port are Sentinel's to say.
    from_url: dict[str, Any] = dict(parse_url(access.required_url()))
    for name in ("host", "port", "connection_class", "path"):
        from_url.pop(name, None)
    if access.uses_tls:
        from_url["ssl"] = True
    retry = {"retry": sentinel.failover_retry()}
    return {**from_url, **access.connection_options(), **_QUIET_HANDSHAKE, **retry, **options}


def redis_client(access: RedisAccess, **options: Any) -> Redis:
    """An asyncio client of the primary; ``options`` add to redis-py's (timeouts...)."""
    if access.uses_sentinel:
        return sentinel.primary_client(
            access.sentinel_addresses(),
            access.redis_sentinel_master,
            access.sentinel_options(),
            _sentinel_managed(access, options),
        )
    return Redis.from_url(
        access.required_url(),
        **access.connection_options(),
        **{**_QUIET_HANDSHAKE, **options},
    )


def replica_redis_client(access: RedisAccess, **options: Any) -> Redis:
    """A read-only client of one replica (through Sentinel); without Sentinel, the primary."""
    if not access.uses_sentinel:
        return redis_client(access, **options)
    return sentinel.replica_client(
        access.sentinel_addresses(),
        access.redis_sentinel_master,
        access.sentinel_options(),
        _sentinel_managed(access, options),
    )


def sync_redis_client(access: RedisAccess, **options: Any) -> redis.Redis:
    """A blocking client of the primary, for start-up chores outside the event loop."""
    if access.uses_sentinel:
        from redis.sentinel import Sentinel

        managed = _sentinel_managed(access, options)
        manager = Sentinel(  # type: ignore[no-untyped-call]
            access.sentinel_addresses(), sentinel_kwargs=access.sentinel_options(), **managed
        )
        client: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call]
            access.redis_sentinel_master
        )
        return client
    return redis.Redis.from_url(
        access.required_url(),
        **access.connection_options(),
        **{**_QUIET_HANDSHAKE, **options},
    )
