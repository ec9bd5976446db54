"""What the endpoint answers a proxy: statuses, challenges and headers, per RFC 6750.

- ``200`` with ``X-Token-Id`` and ``X-Token-Scopes`` (space-separated), for the proxy to
  pass to the upstream;
- ``401`` with ``WWW-Authenticate: Bearer realm="..."`` when no token came at all (or
  only credentials of another scheme), and with ``error="invalid_token"`` added when
  one came and is malformed, unknown (revoked, never issued) or expired;
- ``403`` with ``error="insufficient_scope", scope="..."`` when the token lacks the scope;
- ``403`` ``{"error":"ip_not_allowed"}``, without a challenge, when the token has an
  allowlist and the client's address is not in it (or unknown): the token is good, the
  place is not, and another token or the same one again would not help where a 401
  would invite the client to authenticate anew;
- ``403`` without a challenge when no route gives the request a scope, or the proxy's
  account of the request cannot be trusted: no token could ever pass;
- ``503`` when Redis cannot answer: the endpoint fails closed, never open.

Bodies are short JSON for the proxies that pass a refusal on to the client (Traefik,
Envoy); nginx's ``auth_request`` drops them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Replies", "Reply"]

_REALM = re.compile(r'^[^"\\\x00-\x1f\x7f]{1,64}$')


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: status, headers and body."""

    status: int
    outcome: str
    """What was decided, for the metrics: ``accepted``, a reject reason, ``no_token``,
    ``no_route`` or ``bad_request``."""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


def _error(status: int, outcome: str, challenge: str | None, error: str) -> Reply:
    headers = [("Content-Type", "application/json")]
    if challenge is not None:
        headers.append(("WWW-Authenticate", challenge))
    return Reply(status, outcome, tuple(headers), b'{"error":"%s"}' % error.encode())


class Replies:
    """The replies of one endpoint, built once: only a granted one differs per request."""

    def __init__(self, realm: str) -> None:
        if not _REALM.match(realm):
            raise ValueError("the realm is 1 to 64 characters, without quotes or backslashes")
        self.realm = realm
        bearer = f'Bearer realm="{realm}"'
        invalid = f'{bearer}, error="invalid_token"'
        self.no_token = _error(401, "no_token", bearer, "missing_token")
        self.invalid = {
            reason: _error(401, reason, invalid, "invalid_token")
            for reason in ("malformed", "unknown", "expired")
        }
        self.no_route = _error(403, "no_route", None, "no_route")
        self.ip_not_allowed = _error(403, "ip_not_allowed", None, "ip_not_allowed")
        self.bad_request = _error(403, "bad_request", None, "unreadable_request")
        self.unavailable = _error(503, "unavailable", None, "unavailable")
        self._insufficient: dict[str, Reply] = {}

    def insufficient_scope(self, scope: str) -> Reply:
        """403 naming the scope; ``scope`` is a well-formed scope (no quote can be in it)."""
        reply = self._insufficient.get(scope)
        if reply is None:
            challenge = f'Bearer realm="{self.realm}", error="insufficient_scope", scope="{scope}"'
            reply = _error(403, "insufficient_scope", challenge, "insufficient_scope")
            if len(self._insufficient) < 1024:  # scopes come from the routes: few
                self._insufficient[scope] = reply
        return reply

    @staticmethod
    def accepted(token_id: str, scopes: tuple[str, ...]) -> Reply:
        """200 with what the upstream may rely on."""
        return Reply(
            200, "accepted", (("X-Token-Id", token_id), ("X-Token-Scopes", " ".join(scopes)))
        )
