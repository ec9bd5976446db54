"""``python -m authz``: the auth endpoint, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys

import structlog
from pydantic import ValidationError

from authz.app import build_endpoint
from authz.routes import RouteTableError
from authz.settings import AuthzSettings
from token_service.ops.logs import configure_logging


async def _serve(settings: AuthzSettings) -> None:
    endpoint = build_endpoint(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await endpoint.start()
    try:
        await stop.wait()
    finally:
        await endpoint.stop()
        structlog.get_logger("authz").info("authz_stopped")


def main() -> int:
    """Run the endpoint; the exit code is 2 when the settings or the routes are unusable."""
    try:
        settings = AuthzSettings()
    except ValidationError as exc:
        print(f"authz: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if not settings.configured:
        print("authz: REDIS_URL (or REDIS_SENTINELS) is required", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(settings))
    except RouteTableError as exc:
        print(f"authz: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
