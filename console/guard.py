"""Who may see a page: a live session, of an administrator, checked on every request.

Every change (POST) must carry the session's CSRF token, as a form field or, for htmx,
the ``X-CSRF-Token`` header; the session cookie is also ``SameSite=Strict``.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console.sessions import Session

if TYPE_CHECKING:
    from console.context import Console

__all__ = ["AdminPage", "admin_only", "console_of", "cookie_name", "is_admin"]

AdminPage = Callable[[Request, Session], Awaitable[Response]]


def console_of(request: Request) -> Console:
    """The console this request is served by."""
    console: Console = request.app.state.console
    return console


def cookie_name(secure: bool) -> str:
    """``__Host-`` binds the cookie to this host and path ``/``, and needs https."""
    return "__Host-console_session" if secure else "console_session"


async def is_admin(console: Console, session: Session) -> bool:
    """Whether the person is an administrator now: in ``tokens:admins``, or by their group."""
    if session.group_admin:
        return True
    return bool(await console.redis.sismember(console.keys.admins, session.identity))


async def _csrf_ok(request: Request, session: Session) -> bool:
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else ""
    return hmac.compare_digest(sent.encode(), session.csrf.encode())


def admin_only(page: AdminPage) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a page so that only a signed-in administrator reaches it."""

    @functools.wraps(page)
    async def guarded(request: Request) -> Response:
        console = console_of(request)
        session_id = request.cookies.get(cookie_name(console.settings.secure_cookies), "")
        session = await console.sessions.load(session_id) if session_id else None
        if session is None:
            if request.method == "GET":
                target = quote(request.url.path, safe="/")
                return RedirectResponse(f"/sign-in?next={target}", status_code=303)
            return console.pages.render(request, "signed_out.html", 401, title="Signed out")
        request.state.session = session
        if not await is_admin(console, session):
            return console.pages.render(
                request, "not_admin.html", 403, title="Not an administrator"
            )
        if request.method == "POST" and not await _csrf_ok(request, session):
            return console.pages.render(request, "csrf.html", 403, title="Form expired")
        return await page(request, session)

    return guarded
