"""Sign-in with OpenID Connect: authorization code with PKCE (S256), by Authlib.

The sign-in under way (state, PKCE verifier, nonce) waits in Redis for ten minutes under
the SHA-256 of a random flow id, which a ``SameSite=Lax`` cookie scoped to ``/sign-in/``
carries: the provider's redirect back is a cross-site navigation, on which the
``Strict`` session cookie would not be sent. The flow is used up by the callback.
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass
from typing import Any, cast

import orjson

with warnings.catch_warnings():  # Authlib warns of its own httpx module at import
    warnings.simplefilter("ignore")
    from authlib.integrations.starlette_client import OAuth, OAuthError
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from console.sessions import digest
from console.settings import ConsoleSettings
from token_service.keys import Keys

__all__ = ["FLOW_COOKIE", "OidcSignIn", "SignInFailed", "SignedIn"]

FLOW_COOKIE = "console_sign_in"
_FLOW_S = 600


class SignInFailed(Exception):
    """The provider's answer cannot sign anyone in; the message says why, for the page."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who the provider says signed in."""

    identity: str
    group_admin: bool


class OidcSignIn:
    """The authorization code flow against one provider."""

    def __init__(self, settings: ConsoleSettings, redis: Redis, keys: Keys) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = keys
        oauth = OAuth()
        secret = settings.oidc_client_secret
        oauth.register(
            name="console",
            client_id=settings.oidc_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            server_metadata_url=f"{(settings.oidc_issuer or '').rstrip('/')}"
            "/.well-known/openid-configuration",
            client_kwargs={"scope": "openid profile", "code_challenge_method": "S256"},
        )
        self.client: Any = oauth.create_client("console")

    async def start(self, request: Request, redirect_uri: str) -> Response:
        """Send the browser to the provider, remembering the flow."""
        flow = secrets.token_urlsafe(32)
        request.scope["session"] = {}
        response = cast(Response, await self.client.authorize_redirect(request, redirect_uri))
        state = orjson.dumps(request.scope["session"])
        await self.redis.set(self.keys.console_login(digest(flow)), state, ex=_FLOW_S)
        response.set_cookie(
            FLOW_COOKIE,
            flow,
            max_age=_FLOW_S,
            path="/sign-in/",
            httponly=True,
            secure=self.settings.secure_cookies,
            samesite="lax",
        )
        return response

    async def finish(self, request: Request) -> SignedIn:
        """Check the provider's answer and say who signed in."""
        flow = request.cookies.get(FLOW_COOKIE, "")
        key = self.keys.console_login(digest(flow))
        raw = await self.redis.getdel(key) if flow else None
        if raw is None:
            raise SignInFailed("This sign-in took too long or was already used. Start again.")
        request.scope["session"] = orjson.loads(raw)
        try:
            token = await self.client.authorize_access_token(request)
            claims = dict(token.get("userinfo") or {})
            claims.update(await self.client.userinfo(token=token))
        except OAuthError as exc:
            raise SignInFailed(f"The identity provider refused the sign-in: {exc.error}.") from exc
        identity = claims.get(self.settings.oidc_identity_claim)
        if not isinstance(identity, str) or not identity:
            raise SignInFailed(
                "The identity provider did not say who you are "
                f"(no `{self.settings.oidc_identity_claim}` claim)."
            )
        groups = claims.get(self.settings.oidc_groups_claim) or []
        wanted = self.settings.oidc_admin_group
        group_admin = bool(wanted) and isinstance(groups, list) and wanted in groups
        return SignedIn(identity, group_admin)
