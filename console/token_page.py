"""One token: every field, its daily uses, its audit trail; rotate and revoke it."""

from __future__ import annotations

from typing import Any, cast

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from console.chart import daily_uses
from console.guard import admin_only, console_of
from console.sessions import Session
from contracts import CommandReply, ErrorCode, TokenView, utc_now

__all__ = ["GRACE_CHOICES", "routes"]

GRACE_CHOICES = {
    "0": "None: the old secret stops at once",
    "3600": "1 hour",
    "86400": "24 hours",
    "604800": "7 days (the longest)",
}


async def _token(request: Request) -> TokenView | None:
    return await console_of(request).reader.get(request.path_params["token_id"][:64])


def _missing(request: Request) -> Response:
    return console_of(request).pages.render(request, "not_found.html", 404, title="Not found")


async def _trail(request: Request, token_id: str) -> list[dict[str, Any]]:
    console = console_of(request)
    raw = cast(list[str], await console.redis.lrange(console.keys.token_audit(token_id), -200, -1))
    return [orjson.loads(item) for item in reversed(raw)]


@admin_only
async def token_page(request: Request, _session: Session, notice: str | None = None) -> Response:
    """Everything about one token."""
    console = console_of(request)
    token = await _token(request)
    if token is None:
        return _missing(request)
    days = 90 if request.query_params.get("days") == "90" else 30
    counts = cast(dict[str, str], await console.redis.hgetall(console.keys.token_daily(token.id)))
    uses = daily_uses(counts, days, utc_now().date())
    return console.pages.render(
        request,
        "tokens/show.html",
        title=f"API token {token.name}",
        token=token,
        uses=uses,
        days=days,
        trail=await _trail(request, token.id),
        graces=GRACE_CHOICES,
        notice=notice or _notice(request.query_params.get("done")),
    )


def _notice(done: str | None) -> str | None:
    notices = {
        "revoked": "Token revoked: the next check of any gateway refuses it.",
        "updated": "Token updated: the next check of any gateway follows the new allowlist.",
    }
    return notices.get(done or "")


def _refusal(request: Request, reply: CommandReply) -> Response:
    console = console_of(request)
    status = 403 if reply.error and reply.error.code is ErrorCode.FORBIDDEN else 409
    return console.pages.render(request, "refused.html", status, title="Refused", reply=reply)


@admin_only
async def revoke_confirm(request: Request, _session: Session) -> Response:
    """Are you sure? With an optional reason."""
    token = await _token(request)
    if token is None:
        return _missing(request)
    return console_of(request).pages.render(
        request, "tokens/revoke.html", title=f"Revoke {token.name}", token=token
    )


@admin_only
async def revoke(request: Request, session: Session) -> Response:
    """Revoke at once."""
    console = console_of(request)
    token = await _token(request)
    if token is None:
        return _missing(request)
    reason_field = (await request.form()).get("reason")
    reason = reason_field.strip()[:512] if isinstance(reason_field, str) else ""
    client = await console.senders.client_for(session.identity)
    reply = await client.revoke(token.id, reason=reason or None)
    if not reply.ok:
        return _refusal(request, reply)
    return RedirectResponse(f"/tokens/{token.id}?done=revoked", status_code=303)


@admin_only
async def rotate(request: Request, session: Session) -> Response:
    """A new secret, shown once; the old one works for the grace period chosen."""
    console = console_of(request)
    token = await _token(request)
    if token is None:
        return _missing(request)
    grace_field = (await request.form()).get("grace", "0")
    grace = grace_field if isinstance(grace_field, str) and grace_field in GRACE_CHOICES else "0"
    client = await console.senders.client_for(session.identity)
    reply = await client.rotate(token.id, grace_seconds=int(grace))
    if not reply.ok or reply.secret is None or reply.token is None:
        return _refusal(request, reply)
    return console.pages.render(
        request,
        "tokens/secret.html",
        title="Copy the new secret",
        token=reply.token,
        secret=reply.secret,
        rotated=True,
        grace=GRACE_CHOICES[grace],
    )


routes = [
    Route("/tokens/{token_id}", token_page),
    Route("/tokens/{token_id}/revoke", revoke_confirm, methods=["GET"]),
    Route("/tokens/{token_id}/revoke", revoke, methods=["POST"]),
    Route("/tokens/{token_id}/rotate", rotate, methods=["POST"]),
]
