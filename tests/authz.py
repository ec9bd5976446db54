"""Running the auth endpoint in a test: in this event loop, on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from authz.app import Endpoint, build_endpoint
from authz.settings import AuthzSettings
from token_service.settings import ServiceSettings

__all__ = ["ROUTES", "authz_settings", "running_endpoint"]

ROUTES = Path(__file__).resolve().parent.parent / "deploy" / "authz" / "routes.toml"
"""The route table the repository ships; the tests hold it to its word."""


def authz_settings(settings: ServiceSettings, **overrides: Any) -> AuthzSettings:
    """The endpoint's settings on the test's Redis and key prefix, listening on free ports."""
    fields: dict[str, Any] = {
        **settings.access_fields(),
        "key_prefix": settings.key_prefix,
        "port": 0,
        "http_port": 0,
        "routes_file": ROUTES,
        "gateway_name": "authz-test",
        "timeout_s": 0.5,
    }
    return AuthzSettings(**{**fields, **overrides})


@asynccontextmanager
async def running_endpoint(settings: AuthzSettings) -> AsyncIterator[Endpoint]:
    """The endpoint, started; stopped (and its usage flushed) on the way out."""
    endpoint = build_endpoint(settings)
    await endpoint.start()
    try:
        yield endpoint
    finally:
        await endpoint.stop()
