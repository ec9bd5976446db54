"""Connection settings: users, passwords and TLS files from the environment, checked before
any connection is made, and never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from token_service.redis.connection import RedisAccess, redis_client
from token_service.settings import ServiceSettings
from tokenctl.settings import CliSettings
from workers.settings import AuditSettings


def test_user_and_password_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://redis.internal:6379/0")
    monkeypatch.setenv("REDIS_USERNAME", "audit-worker")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret-pass")
    for settings in (RedisAccess(), ServiceSettings(), AuditSettings(), CliSettings()):
        assert settings.redis_username == "audit-worker"
        assert settings.redis_password == SecretStr("s3cret-pass")
        assert "s3cret-pass" not in repr(settings)
        assert "s3cret-pass" not in str(settings.model_dump())
        options = settings.connection_options()
        assert options["username"] == "audit-worker"
        assert options["password"] == "s3cret-pass"


def test_without_a_user_the_url_alone_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_TLS_CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    access = RedisAccess(redis_url="redis://127.0.0.1:6379/0")
    assert access.connection_options() == {}
    assert not access.uses_tls


def test_tls_files_apply_to_rediss_urls(tmp_path: Path) -> None:
    access = RedisAccess(
        redis_url="rediss://127.0.0.1:6380/0",
        redis_tls_ca_file=tmp_path / "ca.crt",
        redis_tls_cert_file=tmp_path / "client.crt",
        redis_tls_key_file=tmp_path / "client.key",
    )
    assert access.connection_options() == {
        "ssl_ca_certs": str(tmp_path / "ca.crt"),
        "ssl_certfile": str(tmp_path / "client.crt"),
        "ssl_keyfile": str(tmp_path / "client.key"),
    }


def test_tls_files_with_a_plain_url_are_refused_not_ignored(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not rediss://"):
        RedisAccess(redis_url="redis://127.0.0.1:6379/0", redis_tls_ca_file=tmp_path / "ca.crt")


@pytest.mark.parametrize(
    "settings_class", [RedisAccess, ServiceSettings, AuditSettings, CliSettings]
)
def test_a_rejected_setting_does_not_echo_its_value(
    monkeypatch: pytest.MonkeyPatch, settings_class: type[RedisAccess]
) -> None:
    # A URL with a password in it, refused for its TLS files: the error names the field,
    # never the value.
    monkeypatch.setenv("REDIS_URL", "redis://:pw9@r/0")
    monkeypatch.setenv("REDIS_TLS_CA_FILE", "/etc/ca.crt")
    with pytest.raises(ValidationError) as refused:
        settings_class()
    # pydantic would echo the input shortened (here to "redis://:p..."): no echo at all
    assert "input_value" not in str(refused.value)
    assert "pw9" not in str(refused.value)
    assert "REDIS_URL is not rediss://" in str(refused.value)


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValidationError, match="go together"):
        RedisAccess(redis_url="rediss://h:1/0", redis_tls_cert_file=Path("client.crt"))


def test_a_process_without_a_url_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ValueError, match="REDIS_URL"):
        redis_client(RedisAccess())
