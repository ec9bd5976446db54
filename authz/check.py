"""The check: one auth subrequest in, one :class:`~authz.replies.Reply` out.

It reads the original request (:mod:`authz.original`), finds the scope it needs (the
route table, or a header the proxy sets when so configured), takes the token from
``Authorization: Bearer`` (RFC 6750) or the configured header, and asks the gateway
``Verifier``. Nothing here logs a request: a header may hold a token.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from authz.clients import ClientAddress
from authz.metrics import AuthzMetrics
from authz.original import original_request
from authz.replies import Replies, Reply
from authz.routes import RouteTable
from contracts.scopes import grants
from token_service.gateway import Accepted, Verdict, Verifier

__all__ = ["Check", "bearer_token"]

_ROUTED_CACHE = 4096


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value; None for none or another scheme.

    A Bearer header with an empty or odd-looking token still yields it, for the verifier
    to call malformed (401 ``invalid_token`` rather than a bare challenge).
    """
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip(" \t").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip(" \t")


class Check:
    """Answers auth subrequests for one endpoint; shared by every connection."""

    def __init__(
        self,
        verifier: Verifier,
        routes: RouteTable,
        replies: Replies,
        metrics: AuthzMetrics,
        *,
        path_prefix: str = "/check",
        token_header: str | None = None,
        scope_header: str | None = None,
        client_address: ClientAddress | None = None,
    ) -> None:
        self.verifier = verifier
        self.routes = routes
        self.replies = replies
        self.metrics = metrics
        self.path_prefix = path_prefix
        self.token_header = token_header.lower() if token_header else None
        self.scope_header = scope_header.lower() if scope_header else None
        self.client_address = client_address or ClientAddress(None)
        # Few distinct requests meet a busy endpoint; bounded, so odd ones cannot grow it.
        self._routed = functools.lru_cache(maxsize=_ROUTED_CACHE)(self._route)
        self.header_names = frozenset(
            name
            for name in (
                "authorization",
                "x-original-uri",
                "x-forwarded-uri",
                "x-original-method",
                "x-forwarded-method",
                self.token_header,
                self.scope_header,
                self.client_address.header,
            )
            if name is not None
        )
        """The only headers a check reads; a server may drop the others."""

    def _scope(self, method: str, target: str, headers: Mapping[str, str]) -> str | Reply:
        if self.scope_header is not None and self.scope_header in headers:
            scope = headers[self.scope_header].strip()
            # Only a well-formed scope may be echoed in a challenge or checked at all.
            return scope if grants([scope], scope) else self.replies.bad_request
        get = headers.get
        return self._routed(
            method,
            target,
            get("x-original-uri"),
            get("x-forwarded-uri"),
            get("x-original-method"),
            get("x-forwarded-method"),
        )

    def _route(
        self,
        method: str,
        target: str,
        original_uri: str | None,
        forwarded_uri: str | None,
        original_method: str | None,
        forwarded_method: str | None,
    ) -> str | Reply:
        """The scope of a request as its proxy described it (every input is an argument,
        so that the answer can be kept for the next request that says the same)."""
        sources = {
            name: value
            for name, value in (
                ("x-original-uri", original_uri),
                ("x-forwarded-uri", forwarded_uri),
                ("x-original-method", original_method),
                ("x-forwarded-method", forwarded_method),
            )
            if value is not None
        }
        original = original_request(method, target, sources, self.path_prefix)
        if original is None:
            return self.replies.bad_request
        scope = self.routes.scope_for(original.method, original.path)
        return self.replies.no_route if scope is None else scope

    def _token(self, headers: Mapping[str, str]) -> str | None:
        token = bearer_token(headers.get("authorization"))
        if token is None and self.token_header is not None:
            token = headers.get(self.token_header)
        return token

    def _asked(
        self, method: str, target: str, headers: Mapping[str, str]
    ) -> Reply | tuple[str, str]:
        """What the check must verify (scope, token), or the reply when nothing can pass."""
        scope = self._scope(method, target, headers)
        if isinstance(scope, Reply):
            return scope
        token = self._token(headers)
        if token is None:
            return self.replies.no_token
        return scope, token

    def _reply(self, verdict: Verdict, scope: str) -> Reply:
        if isinstance(verdict, Accepted):
            return self.replies.accepted(verdict.token_id, verdict.scopes)
        reason = verdict.reason.value
        if reason == "insufficient_scope":
            return self.replies.insufficient_scope(scope)
        if reason == "ip_not_allowed":
            return self.replies.ip_not_allowed
        if reason == "unavailable":
            return self.replies.unavailable
        return self.replies.invalid[reason]

    def answer_now(self, method: str, target: str, headers: Mapping[str, str]) -> Reply | None:
        """The reply, counted, when it needs no Redis read (a key the verdict cache holds,
        a refusal on its face); else ``None``: then await :meth:`answer_later`."""
        asked = self._asked(method, target, headers)
        if isinstance(asked, Reply):
            reply = asked
        else:
            scope, token = asked
            client_ip = self.client_address.of(headers)
            verdict = self.verifier.verify_now(token, scope, client_ip=client_ip)
            if verdict is None:
                return None
            reply = self._reply(verdict, scope)
        self.metrics.decided(reply.outcome)
        return reply

    async def answer_later(self, method: str, target: str, headers: Mapping[str, str]) -> Reply:
        """The reply, counted, for a check :meth:`answer_now` left to Redis: it reads the
        secret key without looking in the verdict cache again."""
        asked = self._asked(method, target, headers)
        if isinstance(asked, Reply):
            reply = asked
        else:
            scope, token = asked
            client_ip = self.client_address.of(headers)
            verdict = await self.verifier.verify_read(token, scope, client_ip=client_ip)
            reply = self._reply(verdict, scope)
        self.metrics.decided(reply.outcome)
        return reply

    async def __call__(self, method: str, target: str, headers: Mapping[str, str]) -> Reply:
        """The reply to one check, counted, for a server without a same-turn path;
        ``headers`` have lower-case names."""
        reply = self.answer_now(method, target, headers)
        return reply if reply is not None else await self.answer_later(method, target, headers)
