"""Running the service and the audit worker as real processes, the way an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ADMIN
from token_service.settings import ServiceSettings


@contextmanager
def _process(
    module: str, env: Mapping[str, str], log: Path, *args: str
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args], env=dict(env), stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def _base_env(settings: ServiceSettings, env: Mapping[str, str] | None) -> dict[str, str]:
    base = {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "TOKENS_KEY_PREFIX": settings.key_prefix,
    }
    # What the host's environment says of its own Redis must not reach the test's processes.
    for name in (
        "TOKENS_CONSUMER_NAME",
        "AUDIT_CONSUMER_NAME",
        "NOTIFY_CONSUMER_NAME",
        "NOTIFY_WEBHOOKS",
        "NOTIFY_SECRET",
        "REDIS_USERNAME",
        "AUTHZ_ROUTES_FILE",
        "REDIS_PASSWORD",
        "REDIS_TLS_CA_FILE",
        "REDIS_TLS_CERT_FILE",
        "REDIS_TLS_KEY_FILE",
    ):
        base.pop(name, None)
    return {**base, **(env or {})}


@contextmanager
def service_process(
    settings: ServiceSettings, log: Path, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m token_service`` on the test's Redis and prefix; killed on the way out.

    ``env`` adds or overrides variables (a Redis user, say).
    """
    defaults = {
        "TOKENS_ADMINS": ADMIN,
        "TOKENS_RESOURCES": ",".join(settings.resources),
        "TOKENS_CLAIM_IDLE_MS": "1000",
        "TOKENS_BATCH_SIZE": "50",
        "TOKENS_HTTP_PORT": "0",
        "TOKENS_TRUST_SHARED_STREAM": "true",
    }
    with _process(
        "token_service", _base_env(settings, {**defaults, **(env or {})}), log, *args
    ) as p:
        yield p


@contextmanager
def audit_worker_process(
    settings: ServiceSettings, log: Path, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m workers.audit`` on the test's Redis and prefix; killed on the way out."""
    defaults = {"AUDIT_CLAIM_IDLE_MS": "1000", "AUDIT_HTTP_PORT": "0"}
    with _process(
        "workers.audit", _base_env(settings, {**defaults, **(env or {})}), log, *args
    ) as p:
        yield p


@contextmanager
def authz_process(
    settings: ServiceSettings, log: Path, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m authz`` on the test's Redis and prefix; killed on the way out."""
    defaults = {"AUTHZ_PORT": "0", "AUTHZ_HTTP_PORT": "0"}
    with _process("authz", _base_env(settings, {**defaults, **(env or {})}), log, *args) as p:
        yield p


@contextmanager
def notifier_process(
    settings: ServiceSettings, log: Path, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m workers.notify`` on the test's Redis and prefix; killed on the way out."""
    defaults = {"NOTIFY_HTTP_PORT": "0", "NOTIFY_POLL_MS": "50"}
    with _process(
        "workers.notify", _base_env(settings, {**defaults, **(env or {})}), log, *args
    ) as p:
        yield p
