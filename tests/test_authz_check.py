"""The auth endpoint over HTTP, against the real token service: every answer a proxy gets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta

import aiohttp
import pytest
from redis.asyncio import Redis

from authz.app import Endpoint
from contracts import utc_now
from contracts.token_format import mint
from tests.authz import authz_settings, running_endpoint
from tests.conftest import wait_for
from tests.streams import stream_data
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.redis.embedded import free_port
from token_service.settings import ServiceSettings

READ = {"X-Original-URI": "/api/entities/42", "X-Original-Method": "GET"}
WRITE = {"X-Original-URI": "/api/entities/42", "X-Original-Method": "POST"}
INVALID = 'Bearer realm="api", error="invalid_token"'


@pytest.fixture
async def endpoint(settings: ServiceSettings) -> AsyncIterator[Endpoint]:
    async with running_endpoint(authz_settings(settings)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _check(
    http: aiohttp.ClientSession,
    endpoint: Endpoint,
    headers: Mapping[str, str],
    path: str = "/check",
    method: str = "GET",
) -> tuple[int, dict[str, str]]:
    url = f"http://127.0.0.1:{endpoint.server.port}{path}"
    async with http.request(method, url, headers=dict(headers)) as response:
        await response.read()
        return response.status, dict(response.headers)


async def _token(
    client: TokenClient, name: str, scopes: list[str], **extra: object
) -> tuple[str, str]:
    reply = await client.generate(name, scopes, **extra)  # type: ignore[arg-type]
    assert reply.secret is not None
    assert reply.token is not None
    return reply.token.id, reply.secret


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_good_token_is_accepted_with_its_id_and_scopes_for_the_upstream(
    client: TokenClient, endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    token_id, secret = await _token(client, "authz-ok", ["entities:write", "reports:read"])
    status, headers = await _check(http, endpoint, {**READ, **_bearer(secret)})
    assert status == 200
    assert headers["X-Token-Id"] == token_id
    assert headers["X-Token-Scopes"] == "entities:write reports:read"
    assert "WWW-Authenticate" not in headers


async def test_no_token_gets_a_bare_bearer_challenge(
    endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    for credentials in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        status, headers = await _check(http, endpoint, {**READ, **credentials})
        assert status == 401
        assert headers["WWW-Authenticate"] == 'Bearer realm="api"'  # RFC 6750: no error code


async def test_malformed_unknown_and_expired_tokens_are_invalid_tokens(
    client: TokenClient, endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    _, expired = await _token(
        client, "authz-exp", ["entities:read"], expires_at=utc_now() + timedelta(seconds=1)
    )
    broken = mint()[:-1] + "!"
    for presented in ("", "tok_short", broken, mint()):
        status, headers = await _check(http, endpoint, {**READ, **_bearer(presented)})
        assert (status, headers["WWW-Authenticate"]) == (401, INVALID), presented
    await asyncio.sleep(1.05)  # the clock rules, whether or not Redis has dropped the key
    status, headers = await _check(http, endpoint, {**READ, **_bearer(expired)})
    assert (status, headers["WWW-Authenticate"]) == (401, INVALID)


async def test_a_token_without_the_scope_gets_insufficient_scope_naming_it(
    client: TokenClient, endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    _, secret = await _token(client, "authz-read", ["entities:read"])
    status, headers = await _check(http, endpoint, {**WRITE, **_bearer(secret)})
    assert status == 403
    assert headers["WWW-Authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", scope="entities:write"'
    )


async def test_a_request_no_route_covers_is_refused_whatever_the_token(
    client: TokenClient, endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    _, secret = await _token(client, "authz-admin", ["entities:admin", "reports:admin"])
    for original in ("/", "/api/unknown", "/api/entities-x"):
        where = {"X-Original-URI": original, "X-Original-Method": "GET"}
        status, headers = await _check(http, endpoint, {**where, **_bearer(secret)})
        assert status == 403
        assert "WWW-Authenticate" not in headers
    # a client's own X-Forwarded-Uri beside nginx's X-Original-URI: not trusted
    forged = {**READ, "X-Forwarded-Uri": "/api/reports/1", "X-Forwarded-Method": "GET"}
    assert (await _check(http, endpoint, {**forged, **_bearer(secret)}))[0] == 403


async def test_traefik_and_envoy_describe_the_request_their_own_way(
    client: TokenClient, endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    _, secret = await _token(client, "authz-proxies", ["entities:read"])
    traefik = {"X-Forwarded-Uri": "/api/entities/1", "X-Forwarded-Method": "GET"}
    assert (await _check(http, endpoint, {**traefik, **_bearer(secret)}))[0] == 200
    traefik_post = {**traefik, "X-Forwarded-Method": "POST"}
    assert (await _check(http, endpoint, {**traefik_post, **_bearer(secret)}))[0] == 403
    envoy_path = "/check/api/entities/1?expand=all"
    assert (await _check(http, endpoint, _bearer(secret), envoy_path))[0] == 200
    assert (await _check(http, endpoint, _bearer(secret), envoy_path, "DELETE"))[0] == 403
    # HEAD is answered without a body, as HTTP wants
    assert (await _check(http, endpoint, _bearer(secret), envoy_path, "HEAD"))[0] == 200


async def test_the_very_next_check_after_a_revoke_is_refused(
    client: TokenClient, endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    token_id, secret = await _token(client, "authz-revoke", ["entities:read"])
    assert (await _check(http, endpoint, {**READ, **_bearer(secret)}))[0] == 200
    assert (await client.revoke(token_id)).ok
    status, headers = await _check(http, endpoint, {**READ, **_bearer(secret)})
    assert (status, headers["WWW-Authenticate"]) == (401, INVALID)


async def test_redis_out_of_reach_is_a_503_never_a_pass(
    client: TokenClient, settings: ServiceSettings, http: aiohttp.ClientSession
) -> None:
    _, secret = await _token(client, "authz-down", ["entities:read"])
    dead = authz_settings(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with running_endpoint(dead) as endpoint:
        for _ in range(3):
            status, headers = await _check(http, endpoint, {**READ, **_bearer(secret)})
            assert status == 503
            assert "X-Token-Id" not in headers
        async with http.get(f"http://127.0.0.1:{endpoint.health.port}/readyz") as ready:  # type: ignore[union-attr]
            assert ready.status == 503


async def test_a_configured_header_carries_the_bare_token(
    client: TokenClient, settings: ServiceSettings, http: aiohttp.ClientSession
) -> None:
    token_id, secret = await _token(client, "authz-header", ["entities:read"])
    async with running_endpoint(authz_settings(settings, token_header="X-Api-Token")) as endpoint:
        status, headers = await _check(http, endpoint, {**READ, "X-Api-Token": secret})
        assert (status, headers["X-Token-Id"]) == (200, token_id)
        # Authorization: Bearer, when present, is the one read
        both = {**READ, "X-Api-Token": secret, **_bearer(mint())}
        assert (await _check(http, endpoint, both))[0] == 401


async def test_a_scope_header_the_proxy_sets_is_read_only_when_configured(
    client: TokenClient, settings: ServiceSettings, http: aiohttp.ClientSession
) -> None:
    _, secret = await _token(client, "authz-scope-header", ["reports:read"])
    asked = {**READ, "X-Required-Scope": "reports:read", **_bearer(secret)}
    async with running_endpoint(authz_settings(settings)) as endpoint:
        assert (await _check(http, endpoint, asked))[0] == 403  # off: the route decides
    configured = authz_settings(settings, scope_header="X-Required-Scope")
    async with running_endpoint(configured) as endpoint:
        assert (await _check(http, endpoint, asked))[0] == 200
        nonsense = {**asked, "X-Required-Scope": 'x", error="none'}
        status, headers = await _check(http, endpoint, nonsense)
        assert (status, "WWW-Authenticate" in headers) == (403, False)


async def test_uses_are_reported_and_counted_in_the_metrics(
    client: TokenClient,
    endpoint: Endpoint,
    http: aiohttp.ClientSession,
    redis: Redis,
    keys: Keys,
) -> None:
    token_id, secret = await _token(client, "authz-usage", ["entities:read"])
    for _ in range(3):
        assert (await _check(http, endpoint, {**READ, **_bearer(secret)}))[0] == 200
    await _check(http, endpoint, READ)

    async def reported() -> bool:
        events = await stream_data(redis, keys.usage)
        return sum(int(e["count"]) for e in events if e["token_id"] == token_id) == 3

    await wait_for(reported)
    events = [e for e in await stream_data(redis, keys.usage) if e["token_id"] == token_id]
    assert {e["gateway"] for e in events} == {"authz-test"}
    assert endpoint.health is not None
    async with http.get(f"http://127.0.0.1:{endpoint.health.port}/metrics") as response:
        text = await response.text()
    assert 'tokens_authz_decisions_total{outcome="accepted"} 3.0' in text
    assert 'tokens_authz_decisions_total{outcome="no_token"} 1.0' in text
    assert 'tokens_verifier_checks_total{outcome="accepted"} 3.0' in text
    async with http.get(f"http://127.0.0.1:{endpoint.health.port}/readyz") as response:
        assert response.status == 200
