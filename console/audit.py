"""The audit page: the latest events of ``tokens:events``, then a live feed (server-sent events).

Refusals (``CommandRejected``) are shown beside the changes. Filters (actor, event type,
token) apply to both. The feed checks at every turn that the person is still signed in
and still an administrator, and ends when they are not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from console.guard import admin_only, console_of, is_admin
from console.sessions import Session

__all__ = ["EVENT_TYPES", "AuditFilter", "routes"]

EVENT_TYPES = (
    "TokenCreated",
    "TokenRevoked",
    "TokenRotated",
    "TokenUpdated",
    "TokenExpired",
    "CommandRejected",
)
_BLOCK_MS = 10_000


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What the person asked to see."""

    actor: str = ""
    type: str = ""
    token: str = ""

    @classmethod
    def of(cls, request: Request) -> AuditFilter:
        """From the query string (unknown types are ignored)."""
        query = request.query_params
        kind = query.get("type", "")
        return cls(
            query.get("actor", "").strip()[:256],
            kind if kind in EVENT_TYPES else "",
            query.get("token", "").strip()[:64],
        )

    def accepts(self, event: dict[str, Any]) -> bool:
        """Whether the event passes every filter given."""
        return (
            (not self.actor or event.get("actor") == self.actor)
            and (not self.type or event.get("type") == self.type)
            and (not self.token or event.get("token_id") == self.token)
        )


def _details(event: dict[str, Any]) -> str:
    kind = event.get("type")
    if kind == "CommandRejected":
        return f"{event.get('command_type')} refused ({event.get('code')}): {event.get('message')}"
    if kind == "TokenCreated":
        return f"{event.get('name')}: {' '.join(event.get('scopes') or [])}"
    if kind == "TokenRevoked":
        return f"Reason: {event.get('reason') or 'none given'}"
    if kind == "TokenRotated":
        return f"Old secret valid until {event.get('previous_valid_until')}"
    if kind == "TokenUpdated":
        changes = event.get("changes") or {}
        parts = [
            f"{name}: {_shown(change.get('old'))} -> {_shown(change.get('new'))}"
            for name, change in changes.items()
            if isinstance(change, dict)
        ]
        return "; ".join(parts) or "nothing changed"
    return ""


def _shown(value: object) -> str:
    if isinstance(value, list):
        return " ".join(str(item) for item in value) or "any address"
    return "none" if value is None else str(value)


def row(entry_id: str, data: str) -> dict[str, Any]:
    """One event as the page (and the feed) shows it."""
    event = orjson.loads(data)
    event["entry_id"] = entry_id
    event["details"] = _details(event)
    return cast(dict[str, Any], event)


@admin_only
async def audit_page(request: Request, _session: Session) -> Response:
    """The latest matching events, newest first."""
    console = console_of(request)
    wanted = AuditFilter.of(request)
    events: list[dict[str, Any]] = []
    upper, last_id = "+", "0-0"
    for _ in range(20):  # at most 20 x 500 entries back
        page = cast(
            list[tuple[str, dict[str, str]]],
            await console.redis.xrevrange(console.keys.events, upper, "-", 500),
        )
        if page and last_id == "0-0":
            last_id = page[0][0]
        events += [e for e in (row(i, f.get("data", "{}")) for i, f in page) if wanted.accepts(e)]
        if len(events) >= 100 or len(page) < 500:
            break
        upper = "(" + page[-1][0]
    return console.pages.render(
        request,
        "audit.html",
        title="Audit",
        events=events[:100],
        wanted=wanted,
        types=EVENT_TYPES,
        last_id=last_id,
    )


async def _feed(request: Request, session: Session, since: str) -> AsyncIterator[bytes]:
    console = console_of(request)
    wanted = AuditFilter.of(request)
    last = since
    yield b"retry: 3000\n\n"
    while not await request.is_disconnected():
        live = await console.sessions.load(session.id)
        if live is None or not await is_admin(console, live):
            yield b"event: ended\ndata: {}\n\n"
            return
        found = cast(
            list[tuple[str, list[tuple[str, dict[str, str]]]]] | None,
            await console.redis.xread({console.keys.events: last}, count=100, block=_BLOCK_MS),
        )
        if not found:
            yield b": still here\n\n"
            continue
        for entry_id, fields in found[0][1]:
            last = entry_id
            event = row(entry_id, fields.get("data", "{}"))
            if wanted.accepts(event):
                yield b"event: audit\nid: " + entry_id.encode() + b"\ndata: "
                yield orjson.dumps(event) + b"\n\n"


@admin_only
async def audit_stream(request: Request, session: Session) -> Response:
    """Server-sent events: each new matching event as JSON."""
    since = request.headers.get("last-event-id") or request.query_params.get("since") or "$"
    if since != "$" and not all(part.isdigit() for part in since.split("-", 1)):
        since = "$"
    return StreamingResponse(
        _feed(request, session, since),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )


routes = [Route("/audit", audit_page), Route("/audit/stream", audit_stream)]
