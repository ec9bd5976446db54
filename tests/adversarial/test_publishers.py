"""Findings 1 and 3: any publisher could act as an administrator and read others' replies.

Each test here fails on the version 1 design: there, a publisher named any actor it
liked, and replies went wherever ``reply_to`` said.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from contracts import ErrorCode
from tests.adversarial.conftest import INSPECTOR, Deployment
from tests.conftest import ADMIN
from tests.streams import events_of, send_raw
from token_service.app import Service
from token_service.client import TokenClient


def _generate(actor: str, name: str, reply_to: str) -> dict[str, object]:
    return {
        "type": "GenerateToken",
        "command_id": f"c-{uuid.uuid4().hex[:8]}",
        "actor": actor,
        "name": name,
        "scopes": ["entities:admin", "reports:admin"],
        "reply_to": reply_to,
    }


async def test_a_publisher_acting_as_itself_cannot_act_as_an_administrator(
    deployment: Deployment, guarded_service: Service
) -> None:
    keys = deployment.keys
    billing = await deployment.login("publisher-billing")
    async with TokenClient(
        billing, actor=ADMIN, key_prefix=keys.prefix, publisher="billing", timeout=10
    ) as client:
        reply = await client.generate("minted-by-billing", ["entities:admin"])
    assert not reply.ok
    assert reply.error is not None
    assert reply.error.code is ErrorCode.FORBIDDEN
    assert reply.secret is None
    inspector = await deployment.login(INSPECTOR)
    assert await events_of(inspector, keys.events, "TokenCreated") == []
    (refused,) = await events_of(inspector, keys.events, "CommandRejected")
    assert refused["actor"] == ADMIN
    assert refused["code"] == "forbidden"


async def test_a_delegating_publisher_acts_for_administrators_and_nobody_else(
    deployment: Deployment, guarded_service: Service
) -> None:
    keys = deployment.keys
    console = await deployment.login("publisher-console")
    async with TokenClient(
        console, actor=ADMIN, key_prefix=keys.prefix, publisher="console", timeout=10
    ) as client:
        created = await client.generate("via-console", ["entities:read"])
    assert created.ok
    assert created.secret
    assert created.token is not None
    assert created.token.created_by == ADMIN
    async with TokenClient(
        console, actor="mallory", key_prefix=keys.prefix, publisher="console", timeout=10
    ) as client:
        refused = await client.revoke(created.token.id)
    assert refused.error is not None
    assert refused.error.code is ErrorCode.FORBIDDEN


async def test_a_publisher_can_write_only_its_own_stream(deployment: Deployment) -> None:
    keys = deployment.keys
    billing = await deployment.login("publisher-billing")
    for stream in (keys.commands, keys.publisher_commands("console"), keys.events):
        with pytest.raises(NoPermissionError):
            await billing.xadd(stream, {"data": "{}"})


async def test_a_publisher_cannot_listen_to_another_publishers_replies(
    deployment: Deployment,
) -> None:
    keys = deployment.keys
    billing = await deployment.login("publisher-billing")
    for subscribe in ("SUBSCRIBE", "PSUBSCRIBE"):
        for channel in (f"{keys.replies('console')}x", f"{keys.replies_prefix}*", "*"):
            pubsub = billing.pubsub()
            with pytest.raises(NoPermissionError):
                await _subscribed(pubsub, subscribe, channel)
            await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _subscribed(pubsub: Any, subscribe: str, channel: str) -> None:
    await pubsub.execute_command(subscribe, channel)
    await pubsub.parse_response(block=True, timeout=5)


@pytest.mark.parametrize(
    "reply_to",
    ["public-chat", "a*?[x]", "__keyspace@0__:{p}:admins", "{p}:events", "{p}:replies:console:x"],
)
async def test_a_reply_channel_outside_the_publishers_own_is_refused_and_nothing_applied(
    deployment: Deployment, guarded_service: Service, reply_to: str
) -> None:
    keys = deployment.keys
    channel = reply_to.replace("{p}", keys.prefix)
    billing, inspector = (
        await deployment.login("publisher-billing"),
        await deployment.login(INSPECTOR),
    )
    stream = keys.publisher_commands("billing")
    async with hearing_everything(inspector) as heard:
        await send_raw(billing, stream, data=_generate("billing", "x", channel))
        await _until_settled(inspector, stream)
    assert heard == []
    assert await events_of(inspector, keys.events, "TokenCreated") == []
    (refused,) = await events_of(inspector, keys.events, "CommandRejected")
    assert refused["code"] == "invalid"


async def _until_settled(redis: Redis, stream: str) -> None:
    for _ in range(200):
        groups = await redis.xinfo_groups(stream)
        if groups and groups[0]["entries-read"] and not groups[0]["pending"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the entry was not settled in time")


@asynccontextmanager
async def hearing_everything(redis: Redis) -> AsyncIterator[list[object]]:
    """Every message published on any channel while inside."""
    heard: list[object] = []
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe("*")

    async def pump() -> None:
        async for message in pubsub.listen():
            heard.append(message)

    task = asyncio.create_task(pump())
    try:
        yield heard
        await asyncio.sleep(0.2)  # a publish racing the settle still arrives
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()  # type: ignore[no-untyped-call]
