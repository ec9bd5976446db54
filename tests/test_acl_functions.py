"""Code in Redis under the ACL we ship: only the token service brings it in, the operator
may stop it, and every command a function sends is checked against its caller's rights.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from redis.exceptions import ResponseError
from ulid import ULID

from contracts import TokenUsed, utc_now
from tests.acl_server import (
    INSPECTOR,
    AclServer,
    Connect,
    acl_server_in,
    logins,
    refusals,
    refused,
)
from tests.faults import until
from token_service.redis.library import library_version, load_library, loaded_version
from workers.audit import build_worker
from workers.settings import AuditSettings


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[AclServer]:
    """A fresh redis-server with the rendered ACL file, the default user off."""
    yield from acl_server_in(tmp_path)


@pytest.fixture
async def connect(acl_server: AclServer) -> AsyncIterator[Connect]:
    """``await connect(user)``: a decoding client logged in as that user, closed afterwards."""
    async with logins(acl_server) as connect:
        yield connect


_NEVER_ENDS = "while true do end"
_LIBRARY = "#!lua name=mischief\nredis.register_function('spin', function() while true do end end)"


@pytest.mark.parametrize(
    "user", ["gateway", "audit-worker", "operator", "publisher", "healthcheck"]
)
async def test_only_the_token_service_may_bring_code_into_redis(user: str, connect: Any) -> None:
    """A user who may load a script may load one that never ends, and a script that wrote
    before looping cannot be killed: Redis would answer BUSY to everyone until restarted."""
    redis = await connect(user)
    await refused(redis.script_load(_NEVER_ENDS))
    await refused(redis.eval(_NEVER_ENDS, 0))
    await refused(redis.execute_command("EVAL_RO", _NEVER_ENDS, 0))
    await refused(redis.evalsha("0" * 40, 0))
    await refused(redis.evalsha_ro("0" * 40, 0))
    await refused(redis.function_load(_LIBRARY))
    await refused(redis.function_load(_LIBRARY, replace=True))
    await refused(redis.execute_command("FUNCTION", "RESTORE", b"\x00"))
    await refused(redis.execute_command("FUNCTION", "DELETE", "token_service"))
    await refused(redis.execute_command("FUNCTION", "FLUSH"))
    if user != "audit-worker":  # the worker runs the service's folds, and nothing else
        await refused(redis.fcall("tokens_library_version", 0))
        await refused(redis.fcall_ro("tokens_library_version", 0))


async def test_operator_may_stop_a_runaway_script_but_run_none(connect: Any) -> None:
    operator = await connect("operator")
    # Nothing runs, so Redis says so; what matters is that it did not answer NOPERM.
    for kill in (operator.script_kill(), operator.execute_command("FUNCTION", "KILL")):
        with pytest.raises(ResponseError, match="NOTBUSY"):
            await kill


async def test_the_admin_check_reads_the_admins_set_under_the_services_user(
    acl_server: AclServer, connect: Any
) -> None:
    keys = acl_server.keys
    service, operator = await connect("token-service"), await connect("operator")
    await operator.sadd(keys.admins, "bob")
    await load_library(service)

    async def revoke_as(actor: str) -> list[str]:
        # The guard, then the revoke of a token that does not exist.
        return cast(
            list[str],
            await service.fcall(
                "tokens_revoke",
                5,
                keys.command("shared", actor, f"c-{actor}"),
                *(keys.token("01NONE"), keys.token_grace("01NONE")),
                *(keys.expiries, keys.events),
                *(actor, keys.admins, 60_000, "body", "01NONE", "now", "{}"),
                *(keys.secret_prefix, keys.names_prefix, 0),
            ),
        )

    assert (await revoke_as("bob"))[:2] == ["rejected", "not_found"]
    assert (await revoke_as("mallory"))[:2] == ["rejected", "forbidden"]
    # Named in KEYS, as a write-capable argument, the set is out of reach.
    await refused(service.fcall("tokens_reject", 2, keys.admins, keys.events, "{}", "{}", 1))


async def test_audit_worker_calls_the_folds_but_no_command_function(
    acl_server: AclServer, connect: Any
) -> None:
    keys = acl_server.keys
    service, worker = await connect("token-service"), await connect("audit-worker")
    await load_library(service)
    assert await loaded_version(worker) == library_version()
    await service.hset(keys.token("01TOKEN"), "status", "active")
    # A command function sends commands the worker may not: Redis refuses them inside it,
    # even given keys the worker may name.
    streams = (keys.usage, keys.events)
    # (GET it may send, on its reporter windows only: then the key is what Redis refuses.)
    with pytest.raises(ResponseError, match=r"can't run this command|can't access .* keys"):
        await worker.fcall("tokens_reject", 2, *streams, "{}", "{}", 1)
    with pytest.raises(ResponseError, match="can't run this command"):
        await worker.fcall("tokens_expire", 2, *streams, 1, "now", keys.prefix, "01EVENT")
    # Given any other key, Redis refuses the call itself.
    await refused(
        worker.fcall(
            "tokens_reject", 2, keys.command("shared", "a", "c-1"), keys.events, "{}", "{}", 1
        )
    )
    assert await service.hget(keys.token("01TOKEN"), "status") == "active"


async def test_audit_worker_started_before_the_library_waits_and_loses_nothing(
    acl_server: AclServer, connect: Any
) -> None:
    keys = acl_server.keys
    service, inspector = await connect("token-service"), await connect(INSPECTOR)
    gateway = await connect("gateway")
    early = str(ULID())  # token ids are ULIDs: the worker reads the creation time there
    await service.hset(keys.token(early), "status", "active")
    settings = AuditSettings(
        **acl_server.access("audit-worker").access_fields(),
        key_prefix=keys.prefix,
        consumer_name="audit-early",
        poll_ms=20,
        claim_idle_ms=200,
        max_deliveries=1,
        http_port=0,
    )
    built = build_worker(settings)
    starting = asyncio.create_task(built.app.start())
    try:
        used = TokenUsed(token_id=early, actor="gw", used_at=utc_now(), count=3, gateway="gw")
        await gateway.xadd(keys.usage, {"data": used.to_json()})
        await asyncio.sleep(0.5)
        assert built.health is not None
        readiness = await built.health.readiness()
        assert not readiness.ready
        assert "functions" in readiness.reason
        assert not await inspector.hget(keys.token(early), "last_used_ms")

        await load_library(service)  # what the token service does at start-up
        await asyncio.wait_for(starting, 10)

        async def folded() -> bool:
            return bool(await inspector.hget(keys.token(early), "last_used_ms"))

        await until(folded, 20, "usage folded")
        assert (await built.health.readiness()).ready
        assert await inspector.xinfo_groups(keys.usage)
        # Nothing was given up on: the dead-letter stream stayed empty.
        assert await inspector.xlen(keys.dead_letter) == 0
    finally:
        if not starting.done():
            starting.cancel()
        await built.app.stop()
    assert await refusals(inspector) == []
