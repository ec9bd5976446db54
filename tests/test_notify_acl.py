"""The notifier and UpdateToken as their own Redis users, against the ACL file we ship:
nothing they do is refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.acl_server import INSPECTOR, AclServer, acl_server_in, logins, refusals
from tests.conftest import ADMIN, wait_for
from tests.processes import notifier_process, service_process
from tests.webhooks import Receiver
from token_service.client import TokenClient
from token_service.gateway import Accepted, Verifier
from token_service.redis.embedded import free_port
from token_service.settings import ServiceSettings

pytestmark = pytest.mark.slow


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[AclServer]:
    yield from acl_server_in(tmp_path)


@pytest.fixture
async def connect(acl_server: AclServer) -> AsyncIterator[Any]:
    async with logins(acl_server) as connect:
        yield connect


async def test_the_notifier_and_updates_work_as_their_own_users(
    acl_server: AclServer, connect: Any, tmp_path: Path
) -> None:
    keys = acl_server.keys
    settings = ServiceSettings(
        trust_shared_stream=True,
        redis_url=acl_server.server.url,
        key_prefix=keys.prefix,
        resources=["entities", "reports"],
    )
    receiver = Receiver()
    await receiver.up()
    port = free_port()
    hooks = [{"name": "siem", "url": receiver.url("/json"), "format": "json"}]
    notify_env = {
        **acl_server.env("notifier"),
        "NOTIFY_WEBHOOKS": json.dumps(hooks),
        "NOTIFY_SECRET": "s3cret-of-16-chars",
        "NOTIFY_HTTP_PORT": str(port),
    }
    log = tmp_path / "processes.log"
    publisher, gateway = await connect("publisher"), await connect("gateway")
    inspector = await connect(INSPECTOR)
    try:
        with (
            service_process(settings, log, env=acl_server.env("token-service")),
            notifier_process(settings, log, env=notify_env),
        ):

            async def ready() -> bool:
                try:
                    async with (
                        aiohttp.ClientSession() as http,
                        http.get(f"http://127.0.0.1:{port}/readyz") as response,
                    ):
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(ready, 30)
            async with TokenClient(publisher, actor=ADMIN, key_prefix=keys.prefix, timeout=30) as c:
                created = await c.generate(
                    "acl-fenced", ["entities:read"], allowed_cidrs=["10.0.0.0/8"]
                )
                assert created.token is not None
                assert created.secret is not None
                updated = await c.update(created.token.id, allowed_cidrs=[], description="")
                assert updated.ok, updated.error
                verdict = await Verifier(gateway, key_prefix=keys.prefix).verify(
                    created.secret, "entities:read", client_ip="192.0.2.1"
                )
                assert isinstance(verdict, Accepted)
                assert (await c.revoke(created.token.id)).ok

            async def delivered() -> bool:
                return len(receiver.at("/json")) == 1

            await wait_for(delivered, 20)
    except BaseException:
        print(log.read_text(errors="replace"))
        raise
    finally:
        await receiver.down()
    assert await refusals(inspector) == []
