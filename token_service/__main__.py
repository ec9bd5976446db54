"""``python -m token_service``: run the command handler, on an embedded Redis if none is given."""

from __future__ import annotations

import asyncio
import getpass
import sys

import redis
import structlog

from token_service.app import build_service
from token_service.embedded import EmbeddedRedis
from token_service.keys import Keys
from token_service.logs import configure_logging
from token_service.settings import ServiceSettings


def _bootstrap(settings: ServiceSettings) -> str:
    admin = settings.admins[0] if settings.admins else getpass.getuser()
    assert settings.redis_url is not None
    with redis.Redis.from_url(settings.redis_url) as client:
        client.sadd(Keys(settings.key_prefix).admins, admin)
    return admin


def main() -> int:
    """Start the service; returns the process exit code."""
    settings = ServiceSettings()
    configure_logging(settings.log_level)
    log = structlog.get_logger("token_service")
    embedded: EmbeddedRedis | None = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis.start()
        settings = settings.model_copy(update={"redis_url": embedded.url})
        admin = _bootstrap(settings)
        keys = Keys(settings.key_prefix)
        print(
            f"Embedded Redis ({embedded.kind}) at {embedded.url}; nothing is kept after exit.\n"
            f"Administrator '{admin}' is in {keys.admins}. Try:\n"
            f"  redis-cli -p {embedded.port} SUBSCRIBE my-replies    # in one terminal\n"
            f"  redis-cli -p {embedded.port} XADD {keys.commands} '*' data "
            f'\'{{"type":"GenerateToken","command_id":"c-1","actor":"{admin}",'
            f'"name":"first","scopes":["{settings.resources[0]}:read"],'
            f'"reply_to":"my-replies"}}\'',
            flush=True,
        )
    try:
        asyncio.run(build_service(settings).app.run())
    except KeyboardInterrupt:
        pass
    finally:
        log.info("service_stopped")
        if embedded is not None:
            embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
