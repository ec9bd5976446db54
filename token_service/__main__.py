"""``python -m token_service``: run the command handler, on an embedded Redis if none is given.

With ``--with-audit-worker`` (what ``make run`` does) the audit worker runs beside it as
a child process (``python -m workers.audit``) on the same Redis, and stops with it. With
``--with-console`` the web console does too (``python -m console``, the publisher
``console``), printing its address and, on the embedded Redis, a one-time sign-in link
for the administrator bootstrapped there.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import signal
import subprocess
import sys

import structlog

from token_service.app import build_service
from token_service.keys import Keys
from token_service.ops.logs import configure_logging
from token_service.redis.connection import sync_redis_client
from token_service.redis.embedded import EmbeddedRedis
from token_service.settings import ServiceSettings


def _bootstrap(settings: ServiceSettings) -> str:
    admin = settings.admins[0] if settings.admins else getpass.getuser()
    with sync_redis_client(settings) as client:
        client.sadd(Keys(settings.key_prefix).admins, admin)
    return admin


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    # Linux: the worker is sent SIGTERM should this process die, even by SIGKILL.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start_audit_worker(settings: ServiceSettings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "TOKENS_KEY_PREFIX": settings.key_prefix,
        "TOKENS_PREFIX": settings.token_prefix,  # usage entries holding a token are deleted
    }
    if "AUDIT_HTTP_PORT" not in env and settings.http_port == 0:
        env["AUDIT_HTTP_PORT"] = "0"  # a free port, as the service was told to take
    return subprocess.Popen(
        [sys.executable, "-m", "workers.audit"], env=env, preexec_fn=_die_with_parent
    )


def _start_console(settings: ServiceSettings, admin: str | None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "TOKENS_KEY_PREFIX": settings.key_prefix,
        "TOKENS_RESOURCES": ",".join(settings.resources),
    }
    args = [sys.executable, "-m", "console"]
    if admin is not None:  # the embedded Redis: sign in with a link printed on the terminal
        env.setdefault("CONSOLE_SIGN_IN_LINKS", "true")
        args += ["--sign-in-link-for", admin]
    return subprocess.Popen(args, env=env, preexec_fn=_die_with_parent)


def _register_console(settings: ServiceSettings) -> ServiceSettings:
    # The console writes its own stream as the delegating publisher `console`, even where
    # the shared stream is trusted: registered here so that `make run` needs no setting.
    if any(text.partition(":")[0] == "console" for text in settings.publishers):
        return settings
    return settings.model_copy(update={"publishers": [*settings.publishers, "console:delegating"]})


def _announce(embedded: EmbeddedRedis, settings: ServiceSettings, admin: str) -> None:
    keys = Keys(settings.key_prefix)
    replies = f"{keys.prefix}:replies:cli:demo"
    print(
        f"Embedded Redis ({embedded.kind}) at {embedded.url}; nothing is kept after exit.\n"
        f"Administrator '{admin}' is in {keys.admins}. Try:\n"
        f"  redis-cli -p {embedded.port} SUBSCRIBE {replies}    # in one terminal\n"
        f"  redis-cli -p {embedded.port} XADD {keys.commands} '*' data "
        f'\'{{"type":"GenerateToken","command_id":"c-1","actor":"{admin}",'
        f'"name":"first","scopes":["{settings.resources[0]}:read"],'
        f'"reply_to":"{replies}"}}\'',
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Start the service; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m token_service", description=__doc__)
    parser.add_argument(
        "--with-audit-worker",
        action="store_true",
        help="run the audit worker beside it, as a child process (what `make run` does)",
    )
    parser.add_argument(
        "--with-console",
        action="store_true",
        help="run the web console beside it, as a child process (what `make run` does)",
    )
    options = parser.parse_args(argv)
    settings = ServiceSettings()
    configure_logging(settings.log_level)
    log = structlog.get_logger("token_service")
    embedded: EmbeddedRedis | None = None
    admin: str | None = None
    if not settings.configured:
        embedded = EmbeddedRedis.start()
        # Nobody but this machine's user reaches an embedded Redis: its shared stream is
        # trusted, so that redis-cli and version 1 publishers work out of the box.
        settings = settings.model_copy(
            update={"redis_url": embedded.url, "trust_shared_stream": True}
        )
        if options.with_console:
            settings = _register_console(settings)
        admin = _bootstrap(settings)
        _announce(embedded, settings, admin)
    service = build_service(settings)
    worker = _start_audit_worker(settings) if options.with_audit_worker else None
    console = _start_console(settings, admin) if options.with_console else None
    try:
        asyncio.run(service.app.run())
    except KeyboardInterrupt:
        pass
    finally:
        log.info("service_stopped")
        for child in (worker, console):
            if child is not None:
                child.terminate()
                child.wait(10)
        if embedded is not None:
            embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
