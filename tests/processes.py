"""Running the service as a real process, the way an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ADMIN
from token_service.settings import ServiceSettings


@contextmanager
def service_process(
    settings: ServiceSettings, log: Path, *args: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m token_service`` on the test's Redis and prefix; killed on the way out."""
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "TOKENS_KEY_PREFIX": settings.key_prefix,
        "TOKENS_ADMINS": ADMIN,
        "TOKENS_RESOURCES": ",".join(settings.resources),
        "TOKENS_CLAIM_IDLE_MS": "1000",
        "TOKENS_BATCH_SIZE": "50",
        "TOKENS_HTTP_PORT": "0",
    }
    env.pop("TOKENS_CONSUMER_NAME", None)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "token_service", *args], env=env, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
