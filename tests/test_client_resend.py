"""``TokenClient`` when its reply listener loses Redis while a command waits: once it
listens again it sends the command again, so a reply lost meanwhile is answered anew."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from contracts import CommandReply
from tests.conftest import ADMIN, wait_for
from tests.streams import stream_data
from token_service.client import TokenClient
from token_service.keys import Keys


async def test_a_command_waiting_when_the_listener_comes_back_is_sent_again(
    redis: Redis, keys: Keys
) -> None:
    # No service runs: the command waits in the stream, and the test answers it by hand.
    async with TokenClient(redis, actor=ADMIN, key_prefix=keys.prefix, timeout=10) as client:
        sending = asyncio.create_task(client.revoke("01NOSUCHTOKEN", command_id="c-resend"))

        async def written(count: int) -> bool:
            return len(await stream_data(redis, keys.commands)) >= count

        await wait_for(lambda: written(1))
        await redis.client_kill_filter(_type="pubsub")  # the listener's connection drops

        async def listening_again() -> bool:
            return client.resubscribed >= 1

        await wait_for(listening_again)
        await wait_for(lambda: written(2))
        first, again = await stream_data(redis, keys.commands)
        assert again == first  # the same command, the same id: the service answers a repeat
        assert first["command_id"] == "c-resend"
        reply = CommandReply(command_id="c-resend", ok=True, duplicate=True)
        await redis.publish(client.channel, reply.model_dump_json())
        assert (await asyncio.wait_for(sending, 5)) == reply


async def test_nothing_is_sent_again_once_answered(redis: Redis, keys: Keys) -> None:
    async with TokenClient(redis, actor=ADMIN, key_prefix=keys.prefix, timeout=10) as client:
        sending = asyncio.create_task(client.revoke("01NOSUCHTOKEN", command_id="c-once"))

        async def written() -> bool:
            return len(await stream_data(redis, keys.commands)) == 1

        await wait_for(written)
        reply = CommandReply(command_id="c-once", ok=True)
        await redis.publish(client.channel, reply.model_dump_json())
        assert (await asyncio.wait_for(sending, 5)) == reply
        await redis.client_kill_filter(_type="pubsub")

        async def listening_again() -> bool:
            return client.resubscribed >= 1

        await wait_for(listening_again)
        await asyncio.sleep(0.2)
        assert len(await stream_data(redis, keys.commands)) == 1
