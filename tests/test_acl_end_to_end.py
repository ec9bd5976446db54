"""Every component at work as its own Redis user, against the ACL file we ship: the
service and the audit worker as processes, a ``TokenClient``, a gateway and ``tokenctl``;
Redis' ACL log must stay empty (nothing was refused along the way).
"""

from __future__ import annotations

import asyncio
import io
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from typer.testing import CliRunner

from tests.acl_server import (
    INSPECTOR,
    USERS,
    AclServer,
    Connect,
    acl_server_in,
    logins,
    refusals,
)
from tests.conftest import ADMIN
from tests.faults import until
from tests.processes import audit_worker_process, service_process
from token_service.app import build_service
from token_service.client import TokenClient
from token_service.gateway import Accepted, Rejected, RejectReason, Verifier
from token_service.gateway.usage import UsageReporter
from token_service.keys import Keys
from token_service.redis.acl import dev_password
from token_service.redis.embedded import free_port
from token_service.redis.store import TokenStore
from token_service.settings import ServiceSettings
from tokenctl.cli import app as tokenctl_app


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[AclServer]:
    """A fresh redis-server with the rendered ACL file, the default user off."""
    yield from acl_server_in(tmp_path)


@pytest.fixture
async def connect(acl_server: AclServer) -> AsyncIterator[Connect]:
    """``await connect(user)``: a decoding client logged in as that user, closed afterwards."""
    async with logins(acl_server) as connect:
        yield connect


async def _errors_replied(inspector: Redis) -> int:
    return int((await inspector.info("stats"))["total_error_replies"])


async def test_our_clients_send_no_client_setinfo(connect: Any) -> None:
    """No user may run CLIENT SETINFO (nor CLIENT MAINT_NOTIFICATIONS), and Redis 7.2+ logs
    each refusal: our clients must not send them (on 7.0 they are unknown subcommands, an
    error reply all the same)."""
    inspector = await connect(INSPECTOR)
    before = await _errors_replied(inspector)
    for user in USERS:
        assert await (await connect(user)).ping()
    assert await _errors_replied(inspector) == before
    assert await refusals(inspector) == []


def _http_status(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        status: int = response.status
        return status


@contextmanager
def _service_and_worker_as_their_users(
    acl_server: AclServer, log: Path, ports: tuple[int, int]
) -> Iterator[None]:
    """The token service and the audit worker as processes, each logged in as its own user
    and serving HTTP on its port of ``ports``."""
    settings = ServiceSettings(
        trust_shared_stream=True,
        redis_url=acl_server.server.url,
        key_prefix=acl_server.keys.prefix,
        resources=["entities", "reports"],
    )
    with (
        service_process(
            settings,
            log,
            env={**acl_server.env("token-service"), "TOKENS_HTTP_PORT": str(ports[0])},
        ),
        audit_worker_process(
            settings,
            log,
            env={**acl_server.env("audit-worker"), "AUDIT_HTTP_PORT": str(ports[1])},
        ),
    ):
        yield


async def _generated_and_accepted(
    client: TokenClient, reporter: UsageReporter, verifier: Verifier
) -> tuple[str, str]:
    """A token made through the publisher and accepted by the gateway; its id and secret."""
    created = await client.generate("acl-e2e", ["entities:write"])
    assert created.token is not None
    assert created.secret
    token_id = created.token.id
    await reporter.start()
    first = await verifier.verify(created.secret, "entities:read")
    assert isinstance(first, Accepted)
    assert first.token_id == token_id
    return token_id, created.secret


async def _rotated_and_only_the_new_secret_accepted(
    client: TokenClient, verifier: Verifier, token_id: str, secret: str
) -> str:
    rotated = await client.rotate(token_id)
    assert rotated.secret
    old = await verifier.verify(secret, "entities:read")
    assert isinstance(old, Rejected)
    assert old.reason is RejectReason.UNKNOWN
    assert isinstance(await verifier.verify(rotated.secret, "entities:write"), Accepted)
    return rotated.secret


async def _pasted_secret_scrubbed(
    publisher: Redis, inspector: Redis, keys: Keys, token_id: str, secret: str
) -> None:
    """A publisher pastes the live secret into a command: the service refuses it, deletes the
    entry and has Redis rewrite the append-only file, as its own user."""
    pasted = {
        "type": "RevokeToken",
        "command_id": "c-acl-pasted",
        "actor": ADMIN,
        "token_id": token_id,
        "reason": f"leaked {secret}",
    }
    before = int((await inspector.info("persistence"))["aof_rewrites"])
    await publisher.xadd(keys.commands, {"data": orjson.dumps(pasted)})

    async def scrubbed() -> bool:
        info = await inspector.info("persistence")
        done = int(info["aof_rewrites"]) > before
        return done and not info["aof_rewrite_in_progress"]

    await until(scrubbed, 20, "pasted token scrubbed")


async def _revoked_and_refused(
    client: TokenClient, verifier: Verifier, token_id: str, secret: str
) -> None:
    revoked = await client.revoke(token_id, reason="done")
    assert revoked.ok
    gone = await verifier.verify(secret, "entities:read")
    assert isinstance(gone, Rejected)
    assert gone.reason is RejectReason.UNKNOWN


async def _use_and_audit_trail_folded(
    operator: Redis, inspector: Redis, keys: Keys, token_id: str
) -> None:
    """The worker folds the gateway's use and the three events; the operator sees it all."""
    store = TokenStore(operator, keys, 1000)

    async def folded() -> bool:
        view = await store.get(token_id)
        trail = await inspector.lrange(keys.token_audit(token_id), 0, -1)
        return view is not None and view.last_used_at is not None and len(trail) == 3

    await until(folded, 20, "usage folded")
    view = await store.get(token_id)
    assert view is not None
    assert view.status.value == "revoked"


async def _ready_and_measured_as_each_user(ports: tuple[int, int]) -> None:
    for port in ports:  # readiness and group metrics ask Redis as each user
        for path in ("/readyz", "/metrics"):
            assert await asyncio.to_thread(_http_status, port, path) == 200


def _no_password_nor_refused_rewrite_logged(log: Path) -> None:
    written = log.read_text(errors="replace")
    for user in ("token-service", "audit-worker"):
        assert dev_password(user) not in written
    assert "aof_rewrite_not_permitted" not in written


async def test_every_component_does_its_work_as_its_own_user(
    acl_server: AclServer, connect: Any, tmp_path: Path
) -> None:
    keys = acl_server.keys
    publisher, gateway = await connect("publisher"), await connect("gateway")
    operator, inspector = await connect("operator"), await connect(INSPECTOR)
    reporter = UsageReporter(gateway, gateway="gw-acl", key_prefix=keys.prefix, interval_s=0.05)
    verifier = Verifier(gateway, key_prefix=keys.prefix, reporter=reporter)
    log = tmp_path / "processes.log"
    ports = (free_port(), free_port())
    try:
        with _service_and_worker_as_their_users(acl_server, log, ports):
            async with TokenClient(
                publisher, actor=ADMIN, key_prefix=keys.prefix, timeout=30
            ) as client:
                token_id, secret = await _generated_and_accepted(client, reporter, verifier)
                secret = await _rotated_and_only_the_new_secret_accepted(
                    client, verifier, token_id, secret
                )
                await _pasted_secret_scrubbed(publisher, inspector, keys, token_id, secret)
                await _revoked_and_refused(client, verifier, token_id, secret)
                await reporter.close()
            await _use_and_audit_trail_folded(operator, inspector, keys, token_id)
            await _ready_and_measured_as_each_user(ports)
    except BaseException:
        print(log.read_text(errors="replace"))
        raise
    # Nothing any component did was refused, even where the code would have coped.
    assert await refusals(inspector) == []
    _no_password_nor_refused_rewrite_logged(log)


async def test_tokenctl_does_its_work_as_operator(
    acl_server: AclServer, connect: Any, captured_logs: io.StringIO
) -> None:
    """The service runs in this process, logging to ``captured_logs``, not tokenctl's stdout."""
    keys = acl_server.keys
    settings = ServiceSettings(
        trust_shared_stream=True,
        **acl_server.access("token-service").access_fields(),
        key_prefix=keys.prefix,
        admins=[ADMIN],
        resources=["entities", "reports"],
        http_port=None,
        poll_ms=20,
    )
    env = {
        "REDIS_URL": acl_server.server.url,
        **acl_server.env("operator"),
        "TOKENS_KEY_PREFIX": keys.prefix,
        "TOKENS_RESOURCES": "entities,reports",
        "TOKENS_ACTOR": ADMIN,
        "TOKENS_TIMEOUT": "10",
    }

    async def tokenctl(*args: str) -> Any:
        # typer's runner blocks, and tokenctl runs its own event loop: off this one.
        result = await asyncio.to_thread(
            CliRunner().invoke, tokenctl_app, [*args, "--json"], env=env
        )
        assert result.exit_code == 0, result.output
        return orjson.loads(result.output)

    service = build_service(settings)
    await service.app.start()
    try:
        created = await tokenctl("generate", "--name", "ops", "--scope", "entities:read")
        token_id = created["token"]["id"]
        assert [t["id"] for t in await tokenctl("list")] == [token_id]
        assert (await tokenctl("show", token_id))["name"] == "ops"
        assert (await tokenctl("verify", created["secret"], "--scope", "entities:read"))["ok"]
        await tokenctl("admins", "add", "bob")
        assert "bob" in await tokenctl("admins", "list")
        await tokenctl("admins", "remove", "bob")
        await tokenctl("rotate", token_id)
        assert await tokenctl("audit")
        await tokenctl("revoke", token_id, "--yes")
    finally:
        await service.app.stop()
        await service.store.redis.aclose()
    inspector = await connect(INSPECTOR)
    assert await refusals(inspector) == []
