"""Least privilege, enforced by a real redis-server loading the ACL file we ship: the file
itself, logging in, and what each user may and may not do with keys, streams and channels.

Each test starts its own server with the file rendered for the test's key prefix, and
logs in as one user at a time. Refusals must come from Redis itself (NOPERM).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import AuthenticationError, ResponseError

from tests.acl_server import (
    INSPECTOR,
    USERS,
    AclServer,
    Connect,
    acl_server_in,
    logins,
    refused,
)
from token_service.acl import main as acl_main
from token_service.redis.acl import FORBIDDEN, dev_password, password_hash, render, users
from token_service.redis.connection import RedisAccess, redis_client

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[AclServer]:
    """A fresh redis-server with the rendered ACL file, the default user off."""
    yield from acl_server_in(tmp_path)


@pytest.fixture
async def connect(acl_server: AclServer) -> AsyncIterator[Connect]:
    """``await connect(user)``: a decoding client logged in as that user, closed afterwards."""
    async with logins(acl_server) as connect:
        yield connect


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
        await refused(redis.execute_command(*command))
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
    await refused(gateway.delete(secret))
    await refused(gateway.hset(secret, "scopes", "entities:admin"))
    await refused(gateway.expire(secret, 1))
    await refused(gateway.xrange(keys.commands))
    await refused(gateway.xread({keys.commands: "0"}))
    await refused(gateway.xadd(keys.commands, {"data": "{}"}))
    await refused(gateway.xadd(keys.events, {"data": "{}"}))
    await refused(gateway.hgetall(keys.token("01TOKEN")))
    await refused(gateway.xrange(keys.usage))  # it writes usage, it does not read it
    assert await service.exists(secret)


async def test_publisher_sends_commands_and_hears_its_replies_only(
    acl_server: AclServer, connect: Any
) -> None:
    keys = acl_server.keys
    service, publisher = await connect("token-service"), await connect("publisher")
    await service.hset(keys.secret("cd" * 32), "token_id", "01TOKEN")

    assert await publisher.xadd(keys.commands, {"data": "{}"})
    await refused(publisher.hgetall(keys.secret("cd" * 32)))
    await refused(publisher.xadd(keys.events, {"data": "{}"}))
    await refused(publisher.xadd(keys.usage, {"data": "{}"}))
    await refused(publisher.xadd(keys.dead_letter, {"data": "{}"}))
    await refused(publisher.xrange(keys.commands))  # other publishers' commands
    await refused(publisher.sadd(keys.admins, "mallory"))
    await refused(publisher.publish(f"{keys.prefix}:replies:x", "forged"))
    # Replies carry new secrets: a pattern would hear everyone's, and other channels are
    # not its business.
    await refused(publisher.execute_command("PSUBSCRIBE", f"{keys.prefix}:replies:*"))
    await refused(publisher.execute_command("SUBSCRIBE", "somebody-elses-channel"))

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
    await refused(publisher.xtrim(keys.commands, 0))  # the command on its own is refused,
    await refused(gateway.xtrim(keys.usage, 0))
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

    await refused(worker.hgetall(secret))
    await refused(worker.delete(secret))
    await refused(worker.xadd(keys.events, {"data": "{}"}))  # events are the service's
    await refused(worker.xadd(keys.commands, {"data": "{}"}))
    await refused(worker.publish("anything", "x"))
    await refused(worker.sadd(keys.admins, "mallory"))
    await service.hset(*keys.issued("ef" * 32), "01TOKEN")
    await refused(worker.hget(*keys.issued("ef" * 32)))
    # Whether a token was issued, it may ask (after deleting a usage entry holding one).
    assert await worker.exists(secret) == 1
    assert await worker.hexists(*keys.issued("ef" * 32))
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
        await refused(worker.pexpire(stream, 1))
        await refused(worker.delete(stream))
        await refused(worker.hset(stream, "data", "x"))
        await refused(worker.sadd(stream, "x"))
        await refused(worker.rpush(stream, "x"))
        await refused(worker.hincrby(stream, "x", 1))
        await refused(worker.execute_command("XTRIM", stream, "MAXLEN", "0"))
    await refused(worker.xdel(keys.events, "1-1"))
    assert await worker.xdel(keys.usage, "1-1") == 0  # an entry holding a token is deleted
    # Each data command only where the folds use it.
    token = keys.token("01TOKEN")
    await refused(worker.pexpire(token, 1))
    await refused(worker.rpush(token, "x"))
    await refused(worker.hincrby(keys.token_audit("01TOKEN"), "x", 1))
    await refused(worker.hset(f"{keys.prefix}:seen:1", "x", "y"))
    await refused(worker.set(token, "x"))
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
    await refused(service.sadd(keys.admins, "mallory"))
    await refused(service.srem(keys.admins, "bob"))
    await refused(service.delete(keys.admins))
    await refused(service.set(keys.admins, "x"))
    await refused(service.pexpireat(keys.admins, 1))
    await refused(service.rename(keys.admins, keys.ids))
    await refused(service.xadd(keys.usage, {"data": "{}"}))
    await refused(service.hgetall(f"{keys.prefix}:seen:1"))


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
    await refused(operator.hset(keys.token("01TOKEN"), "status", "active"))
    await refused(operator.delete(keys.secret("12" * 32)))
    await refused(operator.xadd(keys.events, {"data": "{}"}))
    await refused(operator.xrange(keys.commands))
    await refused(operator.sadd(keys.commands, "x"))  # selectors do not mix keys


async def test_healthcheck_may_only_ping(acl_server: AclServer, connect: Any) -> None:
    health = await connect("healthcheck")
    assert await health.ping()
    await refused(health.get(acl_server.keys.admins))
    await refused(health.info())
