"""``python -m token_service``: run the command handler, on an embedded Redis if none is given."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

import structlog

from token_service.app import Service, build_service
from token_service.keys import Keys
from token_service.ops.logs import configure_logging
from token_service.redis.connection import sync_redis_client
from token_service.redis.embedded import EmbeddedRedis
from token_service.settings import ServiceSettings
from workers.audit import build_worker
from workers.settings import AuditSettings


def _bootstrap(settings: ServiceSettings) -> str:
    admin = settings.admins[0] if settings.admins else getpass.getuser()
    with sync_redis_client(settings) as client:
        client.sadd(Keys(settings.key_prefix).admins, admin)
    return admin


def _with_audit_worker(service: Service, settings: ServiceSettings) -> None:
    # One process, one connection setting: the Redis user must be allowed both parts' work.
    worker = build_worker(
        AuditSettings(**settings.access_fields(), key_prefix=settings.key_prefix),
        registry=service.registry,
        host_health=service.health,
    )

    async def start_worker() -> None:
        await worker.app.start()

    async def stop_worker() -> None:
        await worker.app.stop()

    service.app.after_startup(start_worker)
    service.app.on_shutdown(stop_worker)


def main(argv: list[str] | None = None) -> int:
    """Start the service; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m token_service", description=__doc__)
    parser.add_argument(
        "--with-audit-worker",
        action="store_true",
        help="run the audit worker in this process too (what `make run` does)",
    )
    options = parser.parse_args(argv)
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
    service = build_service(settings)
    if options.with_audit_worker:
        _with_audit_worker(service, settings)
    try:
        asyncio.run(service.app.run())
    except KeyboardInterrupt:
        pass
    finally:
        log.info("service_stopped")
        if embedded is not None:
            embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
