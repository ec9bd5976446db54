"""What every page of the console is handed: its settings and the parts it talks through.

Built once by :func:`console.app.build_console`; the pages reach it through
:func:`console.guard.console_of`. It lives apart from the composition root so that the
pages can name it without importing the app that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from console.links import SignInLinks
from console.oidc import OidcSignIn
from console.pages import Pages
from console.senders import CommandSenders
from console.sessions import SessionStore
from console.settings import ConsoleSettings
from token_service.keys import Keys
from token_service.redis.reads import TokenReader

__all__ = ["Console"]


@dataclass(frozen=True, slots=True)
class Console:
    """What the pages use: settings, Redis, the read API, sessions, senders, templates."""

    settings: ConsoleSettings
    base_url: str
    redis: Redis
    keys: Keys
    reader: TokenReader
    sessions: SessionStore
    links: SignInLinks
    senders: CommandSenders
    pages: Pages
    oidc: OidcSignIn | None
