"""Least privilege, enforced by a real redis-server loading the ACL file we ship.

Each test starts its own server with the file rendered for the test's key prefix, and
logs in as one user at a time. Refusals must come from Redis itself (NOPERM).
"""

from __future__ import annotations

import asyncio
import io
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError
from typer.testing import CliRunner
from ulid import ULID

from contracts import TokenUsed, utc_now
from tests.conftest import ADMIN
from tests.faults import until
from tests.processes import audit_worker_process, service_process
from token_service.acl import main as acl_main
from token_service.app import build_service
from token_service.client import TokenClient
from token_service.gateway import Accepted, Rejected, RejectReason, Verifier
from token_service.gateway.usage import UsageReporter
from token_service.keys import Keys
from token_service.redis.acl import FORBIDDEN, dev_password, password_hash, render, users
from token_service.redis.connection import RedisAccess, redis_client
from token_service.redis.embedded import EmbeddedRedis, free_port
from token_service.redis.library import library_version, load_library, loaded_version
from token_service.redis.store import TokenStore
from token_service.settings import ServiceSettings
from tokenctl.cli import app as tokenctl_app
from workers.audit import build_worker
from workers.settings import AuditSettings

ROOT = Path(__file__).resolve().parent.parent
USERS = [user.name for user in users()]
INSPECTOR = "acl-inspector"
"""A user for the tests' own eyes only: reads everything, reads the ACL log, changes nothing."""
_INSPECTOR_LINE = (
    f"user {INSPECTOR} on #{password_hash('inspect')} resetkeys resetchannels -@all"
    " +acl|log +info +hgetall +hget +lrange +xlen +xinfo|groups %R~*\n"
)


@dataclass
class AclServer:
    """A redis-server enforcing our ACL for one key prefix."""

    server: EmbeddedRedis
    keys: Keys

    def access(self, user: str, password: str | None = None) -> RedisAccess:
        """Connection settings for ``user`` (with its dev password unless told)."""
        return RedisAccess(
            redis_url=self.server.url,
            redis_username=user,
            redis_password=SecretStr(password or dev_password(user)),
        )

    def env(self, user: str) -> dict[str, str]:
        """What a process needs in its environment to log in as ``user``."""
        return {"REDIS_USERNAME": user, "REDIS_PASSWORD": dev_password(user)}


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[AclServer]:
    """A fresh redis-server with the rendered ACL file, the default user off."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    acl_file = tmp_path / "users.acl"
    acl_file.write_text(render(prefix) + _INSPECTOR_LINE)
    # DEBUG is enabled so that only the ACL stands between a user and it; the append-only
    # file is on, as in compose.yaml, so the service's scrub of pasted tokens runs.
    server = EmbeddedRedis.start(
        appendonly=True,
        appendfsync="everysec",
        extra_args=("--aclfile", str(acl_file), "--enable-debug-command", "local"),
    )
    assert server.kind == "redis-server"
    yield AclServer(server, Keys(prefix))
    server.stop()


@pytest.fixture
async def connect(acl_server: AclServer) -> AsyncIterator[Any]:
    """``await connect(user)``: a decoding client logged in as that user, closed afterwards."""
    opened: list[Redis] = []

    async def open_as(user: str) -> Redis:
        password = "inspect" if user == INSPECTOR else None
        client = redis_client(acl_server.access(user, password), decode_responses=True)
        opened.append(client)
        return client

    yield open_as
    for client in opened:
        await client.aclose()


async def _refused(call: Any) -> None:
    with pytest.raises(NoPermissionError):
        await call


_HANDSHAKE = ("client|setinfo", "client|maint_notifications")
"""What FastStream's own connections send on connecting: no user of ours may run it (our
own clients do not send it), and the clients carry on without it."""


async def _refusals(inspector: Redis) -> list[Any]:
    """Redis' ACL log, less the handshake commands FastStream's connections send."""
    entries = await inspector.acl_log()
    return [entry for entry in entries if entry.get("object") not in _HANDSHAKE]


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
    assert await _refusals(inspector) == []


def test_committed_acl_file_is_the_rendering_for_the_default_prefix() -> None:
    assert (ROOT / "deploy/redis/users.acl").read_text() == render("tokens"), (
        "regenerate it: python -m token_service.acl > deploy/redis/users.acl"
    )


def test_the_command_line_renders_for_any_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    assert acl_main(["--prefix", "billing"]) == 0
    printed = capsys.readouterr().out
    assert printed == render("billing")
    assert "~billing:secret:*" in printed
    assert "tokens:" not in printed


def test_acl_passwords_are_stored_hashed_never_in_plain_text() -> None:
    text = render("tokens")
    for name in USERS:
        assert dev_password(name) not in text
        assert f"#{password_hash(dev_password(name))}" in text
    assert ">" not in text
    assert "nopass" not in text


def test_a_key_prefix_that_needs_escaping_is_refused() -> None:
    with pytest.raises(ValueError, match="escaping"):
        render("tok*ens")


async def test_a_client_that_does_not_log_in_can_do_nothing(acl_server: AclServer) -> None:
    anonymous = redis_client(RedisAccess(redis_url=acl_server.server.url))
    try:
        with pytest.raises(AuthenticationError):
            await anonymous.ping()
    finally:
        await anonymous.aclose()
    as_default = redis_client(acl_server.access("default", "anything"))
    try:
        with pytest.raises(AuthenticationError):
            await as_default.ping()
    finally:
        await as_default.aclose()


async def test_a_wrong_password_is_refused(acl_server: AclServer) -> None:
    client = redis_client(acl_server.access("gateway", "dev-token-service"))
    try:
        with pytest.raises(AuthenticationError):
            await client.ping()
    finally:
        await client.aclose()


@pytest.mark.parametrize("user", USERS)
async def test_no_user_may_flush_configure_list_keys_or_debug(user: str, connect: Any) -> None:
    redis = await connect(user)
    assert await redis.ping()
    for command in (
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("CONFIG", "GET", "*"),
        ("CONFIG", "SET", "appendonly", "no"),
        ("KEYS", "*"),
        ("DEBUG", "SLEEP", "0"),
        ("SHUTDOWN", "NOSAVE"),
        ("ACL", "LIST"),
        ("SCRIPT", "FLUSH"),
        # The two that delete entries holding a token rewrite the append-only file after.
        *([] if user in ("token-service", "audit-worker") else [("BGREWRITEAOF",)]),
    ):
        await _refused(redis.execute_command(*command))
    line = next(u for u in users() if u.name == user).line("0" * 64)
    assert not any(f"+{command}" in line.split() for command in FORBIDDEN)
    for broad in ("+@", "allcommands", "allkeys", "~*"):
        assert broad not in line


async def test_gateway_reads_secrets_and_reports_use_but_changes_nothing(
    acl_server: AclServer, connect: Any
) -> None:
    keys = acl_server.keys
    service, gateway = await connect("token-service"), await connect("gateway")
    secret = keys.secret("ab" * 32)
    await service.hset(secret, mapping={"token_id": "01TOKEN", "scopes": "entities:read"})
    await service.xadd(keys.commands, {"data": "{}"})

    assert (await gateway.hgetall(secret))["token_id"] == "01TOKEN"
    assert await gateway.xadd(keys.usage, {"data": "{}"})
    await _refused(gateway.delete(secret))
    await _refused(gateway.hset(secret, "scopes", "entities:admin"))
    await _refused(gateway.expire(secret, 1))
    await _refused(gateway.xrange(keys.commands))
    await _refused(gateway.xread({keys.commands: "0"}))
    await _refused(gateway.xadd(keys.commands, {"data": "{}"}))
    await _refused(gateway.xadd(keys.events, {"data": "{}"}))
    await _refused(gateway.hgetall(keys.token("01TOKEN")))
    await _refused(gateway.xrange(keys.usage))  # it writes usage, it does not read it
    assert await service.exists(secret)


_NEVER_ENDS = "while true do end"
_LIBRARY = "#!lua name=mischief\nredis.register_function('spin', function() while true do end end)"


@pytest.mark.parametrize(
    "user", ["gateway", "audit-worker", "operator", "publisher", "healthcheck"]
)
async def test_only_the_token_service_may_bring_code_into_redis(user: str, connect: Any) -> None:
    """A user who may load a script may load one that never ends, and a script that wrote
    before looping cannot be killed: Redis would answer BUSY to everyone until restarted."""
    redis = await connect(user)
    await _refused(redis.script_load(_NEVER_ENDS))
    await _refused(redis.eval(_NEVER_ENDS, 0))
    await _refused(redis.execute_command("EVAL_RO", _NEVER_ENDS, 0))
    await _refused(redis.evalsha("0" * 40, 0))
    await _refused(redis.evalsha_ro("0" * 40, 0))
    await _refused(redis.function_load(_LIBRARY))
    await _refused(redis.function_load(_LIBRARY, replace=True))
    await _refused(redis.execute_command("FUNCTION", "RESTORE", b"\x00"))
    await _refused(redis.execute_command("FUNCTION", "DELETE", "token_service"))
    await _refused(redis.execute_command("FUNCTION", "FLUSH"))
    if user != "audit-worker":  # the worker runs the service's folds, and nothing else
        await _refused(redis.fcall("tokens_library_version", 0))
        await _refused(redis.fcall_ro("tokens_library_version", 0))


async def test_operator_may_stop_a_runaway_script_but_run_none(connect: Any) -> None:
    operator = await connect("operator")
    # Nothing runs, so Redis says so; what matters is that it did not answer NOPERM.
    for kill in (operator.script_kill(), operator.execute_command("FUNCTION", "KILL")):
        with pytest.raises(ResponseError, match="NOTBUSY"):
            await kill


async def test_publisher_sends_commands_and_hears_its_replies_only(
    acl_server: AclServer, connect: Any
) -> None:
    keys = acl_server.keys
    service, publisher = await connect("token-service"), await connect("publisher")
    await service.hset(keys.secret("cd" * 32), "token_id", "01TOKEN")

    assert await publisher.xadd(keys.commands, {"data": "{}"})
    await _refused(publisher.hgetall(keys.secret("cd" * 32)))
    await _refused(publisher.xadd(keys.events, {"data": "{}"}))
    await _refused(publisher.xadd(keys.usage, {"data": "{}"}))
    await _refused(publisher.xadd(keys.dead_letter, {"data": "{}"}))
    await _refused(publisher.xrange(keys.commands))  # other publishers' commands
    await _refused(publisher.sadd(keys.admins, "mallory"))
    await _refused(publisher.publish(f"{keys.prefix}:replies:x", "forged"))
    # Replies carry new secrets: a pattern would hear everyone's, and other channels are
    # not its business.
    await _refused(publisher.execute_command("PSUBSCRIBE", f"{keys.prefix}:replies:*"))
    await _refused(publisher.execute_command("SUBSCRIBE", "somebody-elses-channel"))

    channel = f"{keys.prefix}:replies:{uuid.uuid4().hex}"
    pubsub = publisher.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    try:
        assert await service.publish(channel, "hello") == 1
        message = None
        for _ in range(50):
            message = await pubsub.get_message(timeout=0.1)
            if message is not None:
                break
        assert message is not None
        assert message["data"] == "hello"
    finally:
        await pubsub.aclose()


async def test_a_stream_writer_may_still_trim_or_exhaust_the_stream_it_writes(
    acl_server: AclServer, connect: Any
) -> None:
    """A residual risk, pinned (README, "Least privilege"): XADD's own options trim, and an
    explicit id may use up the id space. An ACL grants a command, not its arguments."""
    keys = acl_server.keys
    publisher, gateway = await connect("publisher"), await connect("gateway")
    inspector = await connect(INSPECTOR)
    for _ in range(3):
        await publisher.xadd(keys.commands, {"data": "{}"})
        await gateway.xadd(keys.usage, {"data": "{}"})
    await _refused(publisher.xtrim(keys.commands, 0))  # the command on its own is refused,
    await _refused(gateway.xtrim(keys.usage, 0))
    # ...but XADD with MAXLEN 0 or a MINID past everything trims all the others.
    await publisher.xadd(keys.commands, {"data": "{}"}, maxlen=0, approximate=False)
    await gateway.xadd(keys.usage, {"data": "{}"}, minid="99999999999999", approximate=False)
    assert await inspector.xlen(keys.commands) == 0
    assert await inspector.xlen(keys.usage) == 0
    # The largest id there is: no entry can follow it, so the stream takes no more.
    await publisher.xadd(
        keys.commands, {"data": "{}"}, id="18446744073709551615-18446744073709551615"
    )
    with pytest.raises(ResponseError, match="exhausted the last possible ID"):
        await publisher.xadd(keys.commands, {"data": "{}"})


async def test_audit_worker_never_touches_secrets_or_writes_events(
    acl_server: AclServer, connect: Any
) -> None:
    keys = acl_server.keys
    service, worker = await connect("token-service"), await connect("audit-worker")
    secret = keys.secret("ef" * 32)
    await service.hset(secret, "token_id", "01TOKEN")

    await _refused(worker.hgetall(secret))
    await _refused(worker.delete(secret))
    await _refused(worker.xadd(keys.events, {"data": "{}"}))  # events are the service's
    await _refused(worker.xadd(keys.commands, {"data": "{}"}))
    await _refused(worker.publish("anything", "x"))
    await _refused(worker.sadd(keys.admins, "mallory"))
    await _refused(worker.get(keys.digest("ef" * 32)))
    # Whether a token was issued, it may ask (after deleting a usage entry holding one).
    assert await worker.exists(secret, keys.digest("ef" * 32)) == 1
    assert await worker.xadd(keys.dead_letter, {"data": "{}"})
    assert await worker.xgroup_create(keys.usage, "audit-usage", id="0", mkstream=True)


async def test_audit_worker_may_not_expire_delete_or_overwrite_the_streams(
    acl_server: AclServer, connect: Any
) -> None:
    keys = acl_server.keys
    service, worker = await connect("token-service"), await connect("audit-worker")
    await service.xadd(keys.events, {"data": "{}"})
    await worker.xgroup_create(keys.usage, "audit-usage", id="0", mkstream=True)
    for stream in (keys.events, keys.usage):
        await _refused(worker.pexpire(stream, 1))
        await _refused(worker.delete(stream))
        await _refused(worker.hset(stream, "data", "x"))
        await _refused(worker.sadd(stream, "x"))
        await _refused(worker.rpush(stream, "x"))
        await _refused(worker.hincrby(stream, "x", 1))
        await _refused(worker.execute_command("XTRIM", stream, "MAXLEN", "0"))
    await _refused(worker.xdel(keys.events, "1-1"))
    assert await worker.xdel(keys.usage, "1-1") == 0  # an entry holding a token is deleted
    # Each data command only where the folds use it.
    token = keys.token("01TOKEN")
    await _refused(worker.pexpire(token, 1))
    await _refused(worker.rpush(token, "x"))
    await _refused(worker.hincrby(keys.token_audit("01TOKEN"), "x", 1))
    await _refused(worker.hset(f"{keys.prefix}:seen:1", "x", "y"))
    await _refused(worker.set(token, "x"))
    # What the folds do, it still may.
    assert await worker.hset(token, "last_used_ms", "1") == 1
    assert await worker.hincrby(keys.token_daily("01TOKEN"), "2026-11-29", 2) == 2
    assert await worker.rpush(keys.token_audit("01TOKEN"), "{}") == 1
    assert await worker.sadd(f"{keys.prefix}:seen:1", "e-1") == 1
    assert await worker.pexpire(f"{keys.prefix}:seen:1", 60_000)
    assert await (await connect(INSPECTOR)).xlen(keys.events) == 1


async def test_token_service_reads_admins_but_cannot_change_them_or_usage(
    acl_server: AclServer, connect: Any
) -> None:
    keys = acl_server.keys
    service, operator = await connect("token-service"), await connect("operator")
    assert await operator.sadd(keys.admins, "bob") == 1
    assert await service.sismember(keys.admins, "bob")
    await _refused(service.sadd(keys.admins, "mallory"))
    await _refused(service.srem(keys.admins, "bob"))
    await _refused(service.delete(keys.admins))
    await _refused(service.set(keys.admins, "x"))
    await _refused(service.pexpireat(keys.admins, 1))
    await _refused(service.rename(keys.admins, keys.index))
    await _refused(service.xadd(keys.usage, {"data": "{}"}))
    await _refused(service.hgetall(f"{keys.prefix}:seen:1"))


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
                keys.command(f"c-{actor}"),
                *(keys.token("01NONE"), keys.token_secrets("01NONE")),
                *(keys.expiries, keys.events),
                *(actor, keys.admins, 60_000, "01NONE", "now", "{}"),
                *(keys.secret_prefix, keys.name_prefix, 0),
            ),
        )

    assert (await revoke_as("bob"))[:2] == ["rejected", "not_found"]
    assert (await revoke_as("mallory"))[:2] == ["rejected", "forbidden"]
    # Named in KEYS, as a write-capable argument, the set is out of reach.
    await _refused(service.fcall("tokens_reject", 2, keys.admins, keys.events, "{}", "{}", 1))


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
    with pytest.raises(ResponseError, match="can't run this command"):
        await worker.fcall("tokens_reject", 2, *streams, "{}", "{}", 1)
    with pytest.raises(ResponseError, match="can't run this command"):
        await worker.fcall("tokens_expire", 2, *streams, 1, "now", keys.prefix, "01EVENT")
    # Given any other key, Redis refuses the call itself.
    await _refused(
        worker.fcall("tokens_reject", 2, keys.command("c-1"), keys.events, "{}", "{}", 1)
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
    assert await _refusals(inspector) == []


async def test_operator_reads_and_manages_admins_but_changes_no_token(
    acl_server: AclServer, connect: Any
) -> None:
    keys = acl_server.keys
    service, operator = await connect("token-service"), await connect("operator")
    await service.hset(keys.token("01TOKEN"), "name", "first")
    await service.hset(keys.secret("12" * 32), "token_id", "01TOKEN")

    assert (await operator.hgetall(keys.token("01TOKEN")))["name"] == "first"
    assert await operator.hgetall(keys.secret("12" * 32))
    assert await operator.xadd(keys.commands, {"data": "{}"})
    assert await operator.sadd(keys.admins, "carol") == 1
    assert await operator.srem(keys.admins, "carol") == 1
    await _refused(operator.hset(keys.token("01TOKEN"), "status", "active"))
    await _refused(operator.delete(keys.secret("12" * 32)))
    await _refused(operator.xadd(keys.events, {"data": "{}"}))
    await _refused(operator.xrange(keys.commands))
    await _refused(operator.sadd(keys.commands, "x"))  # selectors do not mix keys


async def test_healthcheck_may_only_ping(acl_server: AclServer, connect: Any) -> None:
    health = await connect("healthcheck")
    assert await health.ping()
    await _refused(health.get(acl_server.keys.admins))
    await _refused(health.info())


def _http_status(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        status: int = response.status
        return status


async def test_every_component_does_its_work_as_its_own_user(
    acl_server: AclServer, connect: Any, tmp_path: Path
) -> None:
    keys = acl_server.keys
    settings = ServiceSettings(
        redis_url=acl_server.server.url,
        key_prefix=keys.prefix,
        resources=["entities", "reports"],
    )
    publisher, gateway = await connect("publisher"), await connect("gateway")
    operator, inspector = await connect("operator"), await connect(INSPECTOR)
    reporter = UsageReporter(gateway, gateway="gw-acl", key_prefix=keys.prefix, interval_s=0.05)
    verifier = Verifier(gateway, key_prefix=keys.prefix, reporter=reporter)
    log = tmp_path / "processes.log"
    ports = (free_port(), free_port())
    try:
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
            async with TokenClient(
                publisher, actor=ADMIN, key_prefix=keys.prefix, timeout=30
            ) as client:
                created = await client.generate("acl-e2e", ["entities:write"])
                assert created.token is not None
                assert created.secret
                token_id = created.token.id
                await reporter.start()
                first = await verifier.verify(created.secret, "entities:read")
                assert isinstance(first, Accepted)
                assert first.token_id == token_id

                rotated = await client.rotate(token_id)
                assert rotated.secret
                old = await verifier.verify(created.secret, "entities:read")
                assert isinstance(old, Rejected)
                assert old.reason is RejectReason.UNKNOWN
                assert isinstance(await verifier.verify(rotated.secret, "entities:write"), Accepted)
                store = TokenStore(operator, keys, 1000)

                async def used() -> bool:
                    view = await store.get(token_id)
                    return view is not None and view.last_used_at is not None

                # Folded while the token is active: uses reported once it is revoked are not.
                await until(used, 20, "usage folded")

                # A publisher pastes the live secret into a command: the service refuses it,
                # deletes the entry and has Redis rewrite the append-only file, as its own user.
                pasted = {
                    "type": "RevokeToken",
                    "command_id": "c-acl-pasted",
                    "actor": ADMIN,
                    "token_id": token_id,
                    "reason": f"leaked {rotated.secret}",
                }
                before = int((await inspector.info("persistence"))["aof_rewrites"])
                await publisher.xadd(keys.commands, {"data": orjson.dumps(pasted)})

                async def scrubbed() -> bool:
                    info = await inspector.info("persistence")
                    done = int(info["aof_rewrites"]) > before
                    return done and not info["aof_rewrite_in_progress"]

                await until(scrubbed, 20, "pasted token scrubbed")

                revoked = await client.revoke(token_id, reason="done")
                assert revoked.ok
                gone = await verifier.verify(rotated.secret, "entities:read")
                assert isinstance(gone, Rejected)
                assert gone.reason is RejectReason.UNKNOWN
                await reporter.close()

            async def folded() -> bool:
                trail = await inspector.lrange(keys.token_audit(token_id), 0, -1)
                return len(trail) == 3

            await until(folded, 20, "events folded")
            view = await store.get(token_id)
            assert view is not None
            assert view.status.value == "revoked"
            for port in ports:  # readiness and group metrics ask Redis as each user
                for path in ("/readyz", "/metrics"):
                    assert await asyncio.to_thread(_http_status, port, path) == 200
    except BaseException:
        print(log.read_text(errors="replace"))
        raise
    # Nothing any component did was refused, even where the code would have coped.
    assert await _refusals(inspector) == []
    written = log.read_text(errors="replace")
    for user in ("token-service", "audit-worker"):
        assert dev_password(user) not in written
    assert "aof_rewrite_not_permitted" not in written


async def test_tokenctl_does_its_work_as_operator(
    acl_server: AclServer, connect: Any, captured_logs: io.StringIO
) -> None:
    """The service runs in this process, logging to ``captured_logs``, not tokenctl's stdout."""
    keys = acl_server.keys
    settings = ServiceSettings(
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
    assert await _refusals(inspector) == []
