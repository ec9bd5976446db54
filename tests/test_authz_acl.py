"""The auth endpoint as the ``gateway`` Redis user: it does its work and Redis refuses nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from contracts.token_format import mint, secret_digest
from tests.acl_server import INSPECTOR, AclServer, Connect, acl_server_in, logins, refusals
from tests.authz import authz_settings, running_endpoint
from token_service.redis.acl import dev_password
from token_service.settings import ServiceSettings


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[AclServer]:
    """A fresh redis-server with the rendered ACL file, the default user off."""
    yield from acl_server_in(tmp_path)


@pytest.fixture
async def connect(acl_server: AclServer) -> AsyncIterator[Connect]:
    """``await connect(user)``: a decoding client logged in as that user."""
    async with logins(acl_server) as connect:
        yield connect


async def test_the_endpoint_checks_and_reports_as_the_gateway_user(
    acl_server: AclServer, connect: Connect
) -> None:
    keys, inspector = acl_server.keys, await connect(INSPECTOR)
    secret = mint()
    fields = ["token_id", "01AUTHZACL", "scopes", "entities:read"]
    service_user = await connect("token-service")  # the one that writes secret hashes
    await service_user.hset(keys.secret(secret_digest(secret)), items=fields)
    service = ServiceSettings(redis_url=acl_server.server.url, key_prefix=keys.prefix)
    settings = authz_settings(
        service, redis_username="gateway", redis_password=SecretStr(dev_password("gateway"))
    )
    read = {"X-Original-URI": "/api/entities/1", "X-Original-Method": "GET"}
    async with running_endpoint(settings) as endpoint, aiohttp.ClientSession() as http:
        check = f"http://127.0.0.1:{endpoint.server.port}/check"
        for token, status in ((secret, 200), (mint(), 401), (secret, 200)):
            headers = {**read, "Authorization": f"Bearer {token}"}
            async with http.get(check, headers=headers) as response:
                assert response.status == status
        assert endpoint.health is not None
        for path in ("/readyz", "/metrics"):
            async with http.get(f"http://127.0.0.1:{endpoint.health.port}{path}") as response:
                assert response.status == 200
    # stopping flushed the usage report, as the gateway user
    assert await inspector.xlen(keys.usage) == 1
    assert await refusals(inspector) == []
