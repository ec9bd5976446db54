"""Needs attention: active tokens never used, unused for a while, or expiring soon."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console.guard import admin_only, console_of
from console.sessions import Session

__all__ = ["routes"]


def _days(text: str | None, default: int) -> int:
    try:
        return min(max(int(text or default), 1), 3650)
    except ValueError:
        return default


@admin_only
async def attention(request: Request, _session: Session) -> Response:
    """The three lists, each token with Rotate and Revoke at hand."""
    console = console_of(request)
    unused_days = _days(request.query_params.get("unused_days"), 90)
    expiring_days = _days(request.query_params.get("expiring_days"), 14)
    report = await console.reader.stale(unused_days, expiring_days)
    return console.pages.render(
        request,
        "attention.html",
        title="Needs attention",
        report=report,
        unused_days=unused_days,
        expiring_days=expiring_days,
    )


routes = [Route("/attention", attention)]
