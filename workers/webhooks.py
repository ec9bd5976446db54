"""One notice to one webhook: its body, its signature, and one attempt to post it.

Every delivery is signed as Stripe signs its webhooks: the header
``Token-Service-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is the
HMAC-SHA256, keyed with the webhook's secret, of ``"<t>.<body>"`` (the body's exact
bytes). A receiver recomputes it, compares in constant time, and refuses a ``t`` too far
from its clock (five minutes, say) so that a recorded delivery cannot be replayed later.
``Token-Service-Event-Id`` names the event: a receiver that must never act twice keeps
the ids it has seen (the notifier sends an event again only when it could not record
that the webhook had it).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from workers.notify_settings import Webhook

__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "Attempt",
    "body_for",
    "post",
    "sign",
    "signature_valid",
    "text_of",
]

SIGNATURE_HEADER = "Token-Service-Signature"
EVENT_ID_HEADER = "Token-Service-Event-Id"


@dataclass(frozen=True, slots=True)
class Attempt:
    """What came of one post: the HTTP status (``None``: no answer) and in words."""

    ok: bool
    status: int | None
    detail: str


def text_of(event: dict[str, Any]) -> str:
    """The notice in one line, for people (Slack)."""
    kind = str(event.get("type", "event"))
    token = event.get("token_id") or "?"
    actor = event.get("actor") or "?"
    when = event.get("occurred_at") or ""
    if kind == "TokenRevoked":
        reason = event.get("reason")
        text = f"Token {token} was revoked by {actor}"
        return f"{text}: {reason} ({when})" if reason else f"{text} ({when})"
    # Events named ahead of their existence: say what is known, whatever they carry.
    said = next(
        (event[k] for k in ("message", "reason", "due_at", "expires_at") if event.get(k)), ""
    )
    return f"{kind}: token {token}{f' - {said}' if said else ''} ({when})"


def body_for(hook: Webhook, event: dict[str, Any], raw: bytes) -> bytes:
    """What is posted: Slack's ``{"text": ...}``, or the event as the stream holds it."""
    if hook.format == "slack":
        # Slack reads <...> as links and mentions (<!channel>): a reason is shown, not run.
        text = text_of(event).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return orjson.dumps({"text": text})
    return raw


def sign(secret: bytes, body: bytes, at: int | None = None) -> str:
    """The signature header's value for ``body``, at unix time ``at`` (now by default)."""
    t = int(time.time()) if at is None else at
    digest = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def signature_valid(
    secret: bytes, header: str, body: bytes, tolerance_s: int = 300, now: float | None = None
) -> bool:
    """What a receiver written in Python checks (any v1 may match; ``t`` must be recent)."""
    parts = [part.partition("=") for part in header.split(",")]
    stamps = [value for name, _, value in parts if name == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    t = int(stamps[0])
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for name, _, value in parts if name == "v1")


async def post(
    session: aiohttp.ClientSession,
    hook: Webhook,
    secret: bytes,
    body: bytes,
    event_id: str,
    timeout_s: float,
) -> Attempt:
    """Post once; any 2xx is delivered, anything else (a redirect too) is a failure."""
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        EVENT_ID_HEADER: event_id,
        "User-Agent": "token-service-notifier",
    }
    try:
        async with session.post(
            hook.url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            await response.read()
            ok = 200 <= response.status < 300
            return Attempt(ok, response.status, f"HTTP {response.status}")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Attempt(False, None, type(exc).__name__)
