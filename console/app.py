"""The composition root: settings in, a Starlette application out.

Everything a page needs hangs off one :class:`Console`, built once at start-up and
reached through ``request.app.state.console``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from importlib.resources import files

import structlog
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from console import attention, audit, signin, token_edit, token_list, token_page
from console.context import Console
from console.headers import SecurityHeaders
from console.links import SignInLinks
from console.oidc import OidcSignIn
from console.pages import Pages
from console.senders import CommandSenders
from console.sessions import SessionStore
from console.settings import ConsoleSettings
from token_service.client import ReplyTimeout
from token_service.keys import Keys
from token_service.redis.connection import redis_client
from token_service.redis.reads import TokenReader

__all__ = ["Console", "build_app", "build_console"]

log = structlog.get_logger("console")


def build_console(settings: ConsoleSettings, base_url: str) -> Console:
    """Wire the console together; nothing connects yet."""
    redis = redis_client(settings, decode_responses=True, health_check_interval=30)
    keys = Keys(settings.key_prefix)
    return Console(
        settings=settings,
        base_url=base_url,
        redis=redis,
        keys=keys,
        reader=TokenReader(redis, keys),
        sessions=SessionStore(
            redis, keys, settings.session_idle_minutes * 60, settings.session_max_hours * 3600
        ),
        links=SignInLinks(redis, keys, settings.link_minutes * 60),
        senders=CommandSenders(redis, settings.key_prefix, settings.reply_timeout_s),
        pages=Pages(),
        oidc=OidcSignIn(settings, redis, keys) if settings.oidc_enabled else None,
    )


async def _home(_request: Request) -> Response:
    return RedirectResponse("/tokens", status_code=303)


async def _livez(_request: Request) -> Response:
    return PlainTextResponse("ok")


async def _redis_down(request: Request, exc: Exception) -> Response:
    log.warning("redis_unavailable", path=request.url.path, error=type(exc).__name__)
    console: Console = request.app.state.console
    return console.pages.render(request, "redis_down.html", 503, title="Redis is unavailable")


async def _no_reply(request: Request, exc: Exception) -> Response:
    log.warning("service_not_answering", path=request.url.path)
    console: Console = request.app.state.console
    return console.pages.render(
        request, "no_reply.html", 504, title="The token service did not answer"
    )


class _AccessLog:
    # One line per request, without the query string: a sign-in link's code stays out.
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def spy(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])  # type: ignore[call-overload]
            await send(message)

        try:
            await self.app(scope, receive, spy)  # type: ignore[arg-type]
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status[0],
                ms=round((time.perf_counter() - started) * 1000, 1),
            )


def build_app(console: Console) -> Starlette:
    """The ASGI application serving ``console``."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await console.senders.close()
        await console.redis.aclose()

    static = StaticFiles(directory=str(files("console") / "static"))
    app = Starlette(
        routes=[
            Route("/", _home),
            Route("/livez", _livez),
            Mount("/static", static, name="static"),
            *signin.routes,
            *token_list.routes,
            *token_page.routes,
            *token_edit.routes,
            *audit.routes,
            *attention.routes,
        ],
        middleware=[
            Middleware(_AccessLog),
            Middleware(SecurityHeaders, hsts=console.settings.secure_cookies),
        ],
        exception_handlers={RedisError: _redis_down, ReplyTimeout: _no_reply},
        lifespan=lifespan,
    )
    app.state.console = console
    return app
