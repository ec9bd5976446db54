"""A real nginx with ``auth_request`` (deploy/nginx/authz.conf, as shipped) in front of an
upstream that echoes what it received, the auth endpoint deciding."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis
from yarl import URL

from authz.app import Endpoint
from contracts.token_format import mint, secret_digest
from tests.authz import authz_settings, running_endpoint
from tests.nginx import NGINX_CONF, Nginx, nginx
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis, free_port
from token_service.settings import ServiceSettings

# CI installs nginx (.ci/run): there, a missing nginx fails these tests instead.
pytestmark = pytest.mark.skipif(
    shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx") and not os.getenv("CI"),
    reason="nginx is not installed (apt-get install nginx)",
)

INVALID = 'Bearer realm="api", error="invalid_token"'


@dataclass
class Upstream:
    """The API behind nginx: it answers with the headers it received, and counts requests."""

    port: int
    seen: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    echo = Upstream(free_port())

    async def answer(request: web.Request) -> web.Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        echo.seen.append(headers)
        return web.json_response({"path": request.path_qs, "headers": headers})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", echo.port).start()
    yield echo
    await runner.cleanup()


@contextmanager
def _nginx(endpoint: Endpoint, upstream: Upstream) -> Iterator[Nginx]:
    with nginx(free_port(), endpoint.server.port, upstream.port) as running:
        yield running
        assert "[alert]" not in running.error_log()


@pytest.fixture
async def front(settings: ServiceSettings, upstream: Upstream) -> AsyncIterator[Nginx]:
    async with running_endpoint(authz_settings(settings)) as endpoint:
        with _nginx(endpoint, upstream) as running:
            yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _get(
    http: aiohttp.ClientSession,
    front: Nginx,
    path: str,
    secret: str | None = None,
    method: str = "GET",
    **headers: str,
) -> tuple[int, dict[str, str], Any]:
    sent = dict(headers)
    if secret is not None:
        sent["Authorization"] = f"Bearer {secret}"
    url = URL(f"http://127.0.0.1:{front.port}{path}", encoded=True)  # sent as written
    async with http.request(method, url, headers=sent) as response:
        body = await response.json() if response.status == 200 else await response.text()
        return response.status, dict(response.headers), body


async def _token(client: TokenClient, name: str, scopes: list[str]) -> tuple[str, str]:
    reply = await client.generate(name, scopes)
    assert reply.secret is not None
    assert reply.token is not None
    return reply.token.id, reply.secret


async def test_a_good_token_reaches_the_upstream_with_its_id_and_scopes(
    client: TokenClient, front: Nginx, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    token_id, secret = await _token(client, "nginx-ok", ["entities:write"])
    # a client's own X-Token-Id is replaced by what the endpoint vouched for
    status, _, body = await _get(
        http, front, "/api/entities/7?x=1", secret, **{"X-Token-Id": "forged"}
    )
    assert status == 200
    assert body["path"] == "/api/entities/7?x=1"
    assert body["headers"]["x-token-id"] == token_id
    assert body["headers"]["x-token-scopes"] == "entities:write"
    status, _, body = await _get(http, front, "/api/entities/7", secret, "POST")
    assert (status, body["headers"]["x-token-id"]) == (200, token_id)


async def test_a_bad_or_missing_token_gets_401_and_never_reaches_the_upstream(
    front: Nginx, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    for secret in (mint(), "tok_nonsense"):
        status, headers, _ = await _get(http, front, "/api/entities/1", secret)
        assert (status, headers["WWW-Authenticate"]) == (401, INVALID)
    status, headers, _ = await _get(http, front, "/api/entities/1")
    assert (status, headers["WWW-Authenticate"]) == (401, 'Bearer realm="api"')
    assert upstream.seen == []


async def test_a_wrong_scope_or_no_route_gets_403_and_never_reaches_the_upstream(
    client: TokenClient, front: Nginx, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, secret = await _token(client, "nginx-read", ["entities:read"])
    status, headers, _ = await _get(http, front, "/api/entities/1", secret, "DELETE")
    assert status == 403
    assert headers["WWW-Authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", scope="entities:write"'
    )
    for path in (
        "/api/reports/1",
        "/elsewhere",
        "/api/entities/../admin/x",
        "/api/entities/%2e%2e/admin/x",
        "/api/entities%2F..%2Fadmin",
    ):
        status, headers, _ = await _get(http, front, path, secret)
        assert status == 403, path
    # nginx passes the client's X-Forwarded-Uri to the upstream, but not to the check
    status, _, _ = await _get(
        http, front, "/api/entities/1", secret, **{"X-Forwarded-Uri": "/api/admin"}
    )
    assert status == 200
    assert len(upstream.seen) == 1


async def test_the_very_next_request_after_a_revoke_is_refused(
    client: TokenClient, front: Nginx, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    token_id, secret = await _token(client, "nginx-revoke", ["entities:read"])
    assert (await _get(http, front, "/api/entities/1", secret))[0] == 200
    assert (await client.revoke(token_id)).ok
    status, headers, _ = await _get(http, front, "/api/entities/1", secret)
    assert (status, headers["WWW-Authenticate"]) == (401, INVALID)
    assert len(upstream.seen) == 1


async def test_redis_down_denies_every_request_and_lets_none_through(
    settings: ServiceSettings, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    own = EmbeddedRedis.start()  # this test's alone: it is stopped halfway
    try:
        keys, secret = Keys(settings.key_prefix), mint()
        async with Redis.from_url(own.url) as redis:
            fields = ["token_id", "01AUTHZDOWN", "scopes", "entities:read"]
            await redis.hset(keys.secret(secret_digest(secret)), items=fields)
        async with running_endpoint(authz_settings(settings, redis_url=own.url)) as endpoint:
            with _nginx(endpoint, upstream) as front:
                assert (await _get(http, front, "/api/entities/1", secret))[0] == 200
                own.stop()
                for _ in range(20):
                    status, headers, _ = await _get(http, front, "/api/entities/1", secret)
                    assert status == 503
                    assert headers["Retry-After"] == "1"
        assert len(upstream.seen) == 1
    finally:
        own.stop()


async def test_the_auth_endpoint_itself_down_denies_too(
    upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    with nginx(free_port(), free_port(), upstream.port) as front:  # nothing on the authz port
        status, _, _ = await _get(http, front, "/api/entities/1", mint())
    assert status == 503
    assert upstream.seen == []


def test_the_readme_shows_the_nginx_configuration_these_tests_run() -> None:
    readme = (NGINX_CONF.parent.parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"```nginx\n{NGINX_CONF.read_text(encoding='utf-8')}```" in readme
