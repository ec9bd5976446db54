"""The auth endpoint and tokens with an allowlist: the client's address comes from the
header the proxy sets, counted from the right so that a client's own copy is never
believed; a token used from elsewhere gets 403 ``ip_not_allowed``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp
import orjson
import pytest

from authz.app import Endpoint
from authz.clients import ClientAddress
from tests.authz import authz_settings, running_endpoint
from token_service.client import TokenClient
from token_service.settings import ServiceSettings

READ = {"X-Original-URI": "/api/entities/42", "X-Original-Method": "GET"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _check(
    http: aiohttp.ClientSession, endpoint: Endpoint, headers: Mapping[str, str]
) -> tuple[int, dict[str, str], bytes]:
    url = f"http://127.0.0.1:{endpoint.server.port}/check"
    async with http.get(url, headers={**READ, **headers}) as response:
        return response.status, dict(response.headers), await response.read()


async def _secret(client: TokenClient, name: str, allowed: list[str] | None) -> str:
    reply = await client.generate(name, ["entities:read"], allowed_cidrs=allowed)
    assert reply.secret is not None
    return reply.secret


async def test_the_address_the_proxy_sets_decides_and_others_get_403_ip_not_allowed(
    client: TokenClient, settings: ServiceSettings, http: aiohttp.ClientSession
) -> None:
    secret = await _secret(client, "authz-ip", ["10.0.0.0/8", "2001:db8::/32"])
    bearer = {"Authorization": f"Bearer {secret}"}
    options = authz_settings(settings, client_ip_header="X-Real-IP")
    async with running_endpoint(options) as endpoint:
        status, headers, _ = await _check(http, endpoint, {**bearer, "X-Real-IP": "10.2.3.4"})
        assert status == 200
        assert "X-Token-Id" in headers
        status, _, _ = await _check(http, endpoint, {**bearer, "X-Real-IP": "2001:db8::1"})
        assert status == 200
        status, headers, body = await _check(http, endpoint, {**bearer, "X-Real-IP": "192.0.2.1"})
        assert status == 403
        assert orjson.loads(body) == {"error": "ip_not_allowed"}
        assert "WWW-Authenticate" not in headers  # no new credentials would help
        assert "X-Token-Id" not in headers
        # No address at all: refused, never waved through.
        status, _, body = await _check(http, endpoint, bearer)
        assert (status, orjson.loads(body)) == (403, {"error": "ip_not_allowed"})
        metrics = endpoint.registry.get_sample_value(
            "tokens_authz_decisions_total", {"outcome": "ip_not_allowed"}
        )
        assert metrics == 2


async def test_without_the_setting_allowlisted_tokens_are_refused_and_others_pass(
    client: TokenClient, settings: ServiceSettings, http: aiohttp.ClientSession
) -> None:
    fenced = await _secret(client, "authz-fenced", ["10.0.0.0/8"])
    open_ = await _secret(client, "authz-open", None)
    async with running_endpoint(authz_settings(settings)) as endpoint:
        # A client's X-Real-IP means nothing unless the operator said the proxy sets it.
        headers = {"Authorization": f"Bearer {fenced}", "X-Real-IP": "10.0.0.1"}
        status, _, _ = await _check(http, endpoint, headers)
        assert status == 403
        status, _, _ = await _check(http, endpoint, {"Authorization": f"Bearer {open_}"})
        assert status == 200


async def test_a_forwarded_for_entry_the_client_wrote_is_never_believed(
    client: TokenClient, settings: ServiceSettings, http: aiohttp.ClientSession
) -> None:
    secret = await _secret(client, "authz-xff", ["10.0.0.0/8"])
    bearer = {"Authorization": f"Bearer {secret}"}
    options = authz_settings(settings, client_ip_header="X-Forwarded-For")
    async with running_endpoint(options) as endpoint:
        # The client claims 10.0.0.1; the proxy appended the real peer, 192.0.2.9.
        spoofed = {**bearer, "X-Forwarded-For": "10.0.0.1, 192.0.2.9"}
        assert (await _check(http, endpoint, spoofed))[0] == 403
        honest = {**bearer, "X-Forwarded-For": "192.0.2.9, 10.0.0.1"}
        assert (await _check(http, endpoint, honest))[0] == 200


def test_client_address_counts_trusted_hops_from_the_right() -> None:
    header = ClientAddress("X-Forwarded-For", hops=2)
    assert header.of({"x-forwarded-for": "1.1.1.1, 10.0.0.1, 172.16.0.1"}) == "10.0.0.1"
    assert header.of({"x-forwarded-for": "172.16.0.1"}) is None  # fewer hops than trusted
    assert ClientAddress("X-Real-IP").of({"x-real-ip": "[2001:DB8::1]"}) == "2001:db8::1"
    assert ClientAddress("X-Real-IP").of({"x-real-ip": "not-an-ip"}) is None
    assert ClientAddress(None).of({"x-real-ip": "10.0.0.1"}) is None
