"""``python -m console``: serve the web console; ``python -m console link NAME``: a sign-in link.

With ``--sign-in-link-for NAME`` (what ``make run`` passes) it prints, once it listens,
its address and a one-time sign-in link for that administrator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys

import structlog
import uvicorn

from console.app import build_app, build_console
from console.links import SignInLinks
from console.settings import ConsoleSettings
from token_service.keys import Keys
from token_service.ops.logs import configure_logging
from token_service.redis.connection import redis_client

__all__ = ["main"]


def _listen(settings: ConsoleSettings) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


async def _link(settings: ConsoleSettings, base_url: str, identity: str) -> str:
    redis = redis_client(settings, decode_responses=True)
    try:
        code = await SignInLinks(
            redis, Keys(settings.key_prefix), settings.link_minutes * 60
        ).create(identity)
    finally:
        await redis.aclose()
    return f"{base_url}/sign-in/link?code={code}"


async def _serve(settings: ConsoleSettings, sign_in_for: str | None) -> None:
    sock = _listen(settings)
    base_url = settings.base_url(sock.getsockname()[1])
    console = build_console(settings, base_url)
    config = uvicorn.Config(
        build_app(console), log_config=None, access_log=False, lifespan="on", proxy_headers=False
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn sets a flag
        await asyncio.sleep(0.02)
    structlog.get_logger("console").info("console_listening", url=base_url)
    message = f"Console: {base_url}/"
    if sign_in_for and settings.sign_in_links:
        link = await _link(settings, base_url, sign_in_for)
        message += (
            f"\nSign in as '{sign_in_for}' (once, within {settings.link_minutes} minutes): {link}"
        )
    print(message, flush=True)
    await serving


def main(argv: list[str] | None = None) -> int:
    """Serve, or print a sign-in link; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m console", description=__doc__)
    parser.add_argument("--sign-in-link-for", metavar="NAME", help="print a one-time link")
    sub = parser.add_subparsers(dest="command")
    link = sub.add_parser("link", help="print a one-time sign-in link for NAME and exit")
    link.add_argument("name")
    options = parser.parse_args(argv)
    settings = ConsoleSettings()
    configure_logging(settings.log_level, sys.stderr)
    if options.command == "link":
        if not settings.sign_in_links:
            print("sign-in links are off: set CONSOLE_SIGN_IN_LINKS=true", file=sys.stderr)
            return 2
        base_url = settings.base_url(settings.port)
        print(asyncio.run(_link(settings, base_url, options.name)), flush=True)
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(settings, options.sign_in_link_for))
    return 0


if __name__ == "__main__":
    sys.exit(main())
