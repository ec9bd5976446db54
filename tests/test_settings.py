"""Settings come from the environment once, as one typed object."""

from __future__ import annotations

import pytest

from token_service.settings import ServiceSettings


def test_environment_names_and_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("TOKENS_KEY_PREFIX", "acme")
    monkeypatch.setenv("TOKENS_PREFIX", "acm")
    monkeypatch.setenv("TOKENS_ADMINS", "alice, bob,")
    monkeypatch.setenv("TOKENS_RESOURCES", "entities,reports")
    monkeypatch.setenv("TOKENS_CLAIM_IDLE_MS", "1500")
    monkeypatch.setenv("TOKENS_MAX_DELIVERIES", "3")
    monkeypatch.setenv("TOKENS_COMMAND_TTL_SECONDS", "3600")
    settings = ServiceSettings()
    assert settings.redis_url == "redis://127.0.0.1:1/0"
    assert settings.key_prefix == "acme"
    assert settings.token_prefix == "acm"
    assert settings.admins == ["alice", "bob"]
    assert settings.resources == ["entities", "reports"]
    assert settings.claim_idle_ms == 1500
    assert settings.max_deliveries == 3
    assert settings.command_ttl_seconds == 3600


def test_consumer_name_defaults_to_host_and_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKENS_CONSUMER_NAME", raising=False)
    import os

    assert ServiceSettings().consumer_name.endswith(f"-{os.getpid()}")
