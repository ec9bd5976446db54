"""Signing in (a one-time link, or OpenID Connect) and out."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from console.guard import console_of, cookie_name
from console.oidc import FLOW_COOKIE, SignInFailed
from console.sessions import Session

__all__ = ["routes"]


def _local(target: str | None) -> str:
    # Only a path of this site: never an open redirect to somewhere else.
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/tokens"


async def sign_in_page(request: Request) -> Response:
    """How to sign in here."""
    console = console_of(request)
    return console.pages.render(
        request,
        "sign_in.html",
        title="Sign in",
        oidc=console.oidc is not None,
        links=console.settings.sign_in_links,
        next=_local(request.query_params.get("next")),
        problem=None,
    )


def _problem(request: Request, message: str, status: int = 400) -> Response:
    console = console_of(request)
    return console.pages.render(
        request,
        "sign_in.html",
        status,
        title="Sign in",
        oidc=console.oidc is not None,
        links=console.settings.sign_in_links,
        next="/tokens",
        problem=message,
    )


async def _signed_in(request: Request, session: Session, target: str) -> Response:
    console = console_of(request)
    request.state.session = session
    # A page, not a redirect: its refresh is a same-site navigation, so the Strict
    # cookie set here goes along (after the provider's cross-site redirect it would not).
    response = console.pages.render(request, "signed_in.html", title="Signed in", next=target)
    response.set_cookie(
        cookie_name(console.settings.secure_cookies),
        session.id,
        max_age=console.settings.session_max_hours * 3600,
        path="/",
        httponly=True,
        secure=console.settings.secure_cookies,
        samesite="strict",
    )
    return response


async def link(request: Request) -> Response:
    """Redeem a one-time sign-in link."""
    console = console_of(request)
    if not console.settings.sign_in_links:
        return _problem(request, "Sign-in links are turned off here.", 404)
    identity = await console.links.redeem(request.query_params.get("code", ""))
    if identity is None:
        return _problem(
            request,
            "This sign-in link was already used or has expired. Get a new one with "
            "`python -m console link NAME` (or restart `make run`).",
        )
    session = await console.sessions.create(identity, "link")
    return await _signed_in(request, session, "/tokens")


async def oidc_start(request: Request) -> Response:
    """Go to the identity provider."""
    console = console_of(request)
    if console.oidc is None:
        return _problem(request, "No identity provider is configured here.", 404)
    return await console.oidc.start(request, f"{console.base_url}/sign-in/callback")


async def oidc_callback(request: Request) -> Response:
    """Back from the identity provider."""
    console = console_of(request)
    if console.oidc is None:
        return _problem(request, "No identity provider is configured here.", 404)
    try:
        who = await console.oidc.finish(request)
    except SignInFailed as exc:
        return _problem(request, str(exc))
    session = await console.sessions.create(who.identity, "oidc", group_admin=who.group_admin)
    response = await _signed_in(request, session, "/tokens")
    response.delete_cookie(FLOW_COOKIE, path="/sign-in/")
    return response


async def sign_out(request: Request) -> Response:
    """End the session (administrator or not), with its CSRF token."""
    console = console_of(request)
    name = cookie_name(console.settings.secure_cookies)
    session_id = request.cookies.get(name, "")
    session = await console.sessions.load(session_id) if session_id else None
    if session is not None:
        form = await request.form()
        sent = form.get("csrf_token")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf):
            request.state.session = session
            return console.pages.render(request, "csrf.html", 403, title="Form expired")
        await console.sessions.end(session.id)
    response = RedirectResponse("/sign-in?signed_out=1", status_code=303)
    response.delete_cookie(name, path="/", secure=console.settings.secure_cookies)
    return response


routes = [
    Route("/sign-in", sign_in_page),
    Route("/sign-in/link", link),
    Route("/sign-in/oidc", oidc_start),
    Route("/sign-in/callback", oidc_callback),
    Route("/sign-out", sign_out, methods=["POST"]),
]
