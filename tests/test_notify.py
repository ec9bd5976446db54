"""The notifier as a real process (`python -m workers.notify`), posting to a real HTTP
receiver: signed deliveries in both formats, retries across an outage, and no duplicate
after a restart."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import orjson
import pytest
from redis.asyncio import Redis

from tests.conftest import ADMIN, wait_for
from tests.processes import notifier_process
from tests.streams import events_of
from tests.webhooks import Receiver
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.settings import ServiceSettings

SECRET = "whsec-test-secret"
HOOKS = ("/slack", "/json")
pytestmark = pytest.mark.slow


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = Receiver()
    yield started
    await started.down()


def _env(receiver: Receiver, consumer: str = "notify-test", **more: str) -> dict[str, str]:
    hooks = [
        {"name": "ops-slack", "url": receiver.url("/slack"), "format": "slack"},
        {"name": "siem", "url": receiver.url("/json"), "format": "json"},
    ]
    return {
        "NOTIFY_WEBHOOKS": json.dumps(hooks),
        "NOTIFY_SECRET": SECRET,
        "NOTIFY_CONSUMER_NAME": consumer,
        "NOTIFY_RETRY_BASE_S": "0.1",
        "NOTIFY_RETRY_MAX_S": "0.4",
        "NOTIFY_TIMEOUT_S": "2",
        **more,
    }


@contextmanager
def _notifier(settings: ServiceSettings, tmp_path: Path, env: dict[str, str]) -> Iterator[None]:
    with notifier_process(settings, tmp_path / "notify.log", env=env) as process:
        yield
        assert process.poll() is None, (tmp_path / "notify.log").read_text()


async def _ready(redis: Redis, keys: Keys) -> None:
    async def group_exists() -> bool:
        groups = await redis.xinfo_groups(keys.events) if await redis.exists(keys.events) else []
        return any(group["name"] == "notify" for group in groups)

    await wait_for(group_exists, 20)


async def _revoke(client: TokenClient, name: str, reason: str | None = None) -> str:
    created = await client.generate(name, ["entities:read"])
    assert created.token is not None
    assert (await client.revoke(created.token.id, reason=reason)).ok
    return created.token.id


def _signed(header: str, body: bytes) -> bool:
    # Recomputed here, as a receiver would, from the header's parts alone.
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(
        SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(parts["v1"], expected) and abs(time.time() - int(parts["t"])) < 60


async def _deliveries(redis: Redis, keys: Keys) -> list[dict[str, str]]:
    entries = cast(list[tuple[str, dict[str, str]]], await redis.xrange(keys.notify_deliveries))
    return [fields for _, fields in entries]


async def test_a_revocation_reaches_both_webhooks_signed_in_their_formats(
    client: TokenClient,
    redis: Redis,
    keys: Keys,
    settings: ServiceSettings,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    await receiver.up()
    with _notifier(settings, tmp_path, _env(receiver)):
        await _ready(redis, keys)
        token_id = await _revoke(client, "notified", reason="left the company")
        await wait_for(lambda: _arrived(receiver, 1), 10)
        (revoked,) = await events_of(redis, keys.events, "TokenRevoked")
        (slack,) = receiver.at("/slack")
        (plain,) = receiver.at("/json")
        for got in (slack, plain):
            assert _signed(got.headers["Token-Service-Signature"], got.body)
            assert got.headers["Token-Service-Event-Id"] == revoked["event_id"]
            assert got.headers["Content-Type"] == "application/json"
        text = orjson.loads(slack.body)["text"]
        assert text.startswith(f"Token {token_id} was revoked by {ADMIN}: left the company")
        assert orjson.loads(plain.body) == revoked
        # Only what was asked for goes out (TokenCreated did not), and all is acknowledged.
        await wait_for(lambda: _nothing_pending(redis, keys), 5)
        records = await _deliveries(redis, keys)
        assert sorted(r["webhook"] for r in records) == ["ops-slack", "siem"]
        assert all(r["ok"] == "true" and r["attempt"] == "1" for r in records)
        assert all(r["status"] == "HTTP 200" for r in records)


async def test_event_types_named_ahead_go_out_when_they_appear(
    redis: Redis, keys: Keys, settings: ServiceSettings, receiver: Receiver, tmp_path: Path
) -> None:
    await receiver.up()
    env = _env(receiver, NOTIFY_EVENT_TYPES='["TokenRevoked", "TokenExpiring"]')
    with _notifier(settings, tmp_path, env):
        await _ready(redis, keys)
        expiring = {"type": "TokenExpiring", "token_id": "01X", "expires_at": "2027-01-01"}
        await redis.xadd(keys.events, {"data": orjson.dumps(expiring)})
        await redis.xadd(keys.events, {"data": orjson.dumps({"type": "TokenRotationDue"})})
        await wait_for(lambda: _arrived(receiver, 1), 10)
        await wait_for(lambda: _nothing_pending(redis, keys), 5)
        assert orjson.loads(receiver.at("/json")[0].body) == expiring
        assert "TokenExpiring: token 01X" in orjson.loads(receiver.at("/slack")[0].body)["text"]
        assert len(receiver.received) == 2  # TokenRotationDue was not in the list


async def test_a_receiver_outage_delays_delivery_and_loses_nothing(
    client: TokenClient,
    redis: Redis,
    keys: Keys,
    settings: ServiceSettings,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    with _notifier(settings, tmp_path, _env(receiver)):
        await _ready(redis, keys)
        ids = [await _revoke(client, f"outage-{i}") for i in range(3)]

        async def retried() -> bool:
            failed = [r for r in await _deliveries(redis, keys) if r["ok"] == "false"]
            return len({r["attempt"] for r in failed}) >= 3  # attempts 1, 2, 3 at least

        await wait_for(retried, 15)
        assert receiver.received == []
        records = await _deliveries(redis, keys)
        pending = await redis.xpending(keys.events, "notify")
        assert pending["pending"] == 3, records  # held, not acknowledged
        await receiver.up()
        await wait_for(lambda: _arrived(receiver, 3), 15)
        await wait_for(lambda: _nothing_pending(redis, keys), 5)
        for path in HOOKS:
            bodies = [got.body for got in receiver.at(path)]
            assert len(bodies) == 3, (path, await _deliveries(redis, keys))
        seen = {orjson.loads(got.body)["token_id"] for got in receiver.at("/json")}
        assert seen == set(ids)
        delivered = [r for r in await _deliveries(redis, keys) if r["ok"] == "true"]
        assert len(delivered) == 6, delivered
        assert all(int(r["attempt"]) > 1 for r in delivered)


async def test_a_restarted_notifier_sends_nothing_twice(
    client: TokenClient,
    redis: Redis,
    keys: Keys,
    settings: ServiceSettings,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    # Only the Slack receiver is up at first: the event is half delivered when the
    # notifier dies, without a chance to say goodbye.
    slack_only = Receiver()
    env = _env(receiver)
    hooks = json.loads(env["NOTIFY_WEBHOOKS"])
    hooks[0]["url"] = slack_only.url("/slack")
    env["NOTIFY_WEBHOOKS"] = json.dumps(hooks)
    await slack_only.up()
    try:
        with notifier_process(settings, tmp_path / "first.log", env=env) as first:
            await _ready(redis, keys)
            await _revoke(client, "restarted")
            await wait_for(lambda: _arrived(slack_only, 1, paths=("/slack",)), 10)

            async def recorded() -> bool:
                records = await _deliveries(redis, keys)
                return any(r["webhook"] == "ops-slack" and r["ok"] == "true" for r in records)

            # Killed once the delivery is written down: between the receiver's 200 and
            # that write, a crash would send it again (README, "Notifier": the one window).
            await wait_for(recorded, 10)
            first.kill()
        # Another consumer (another host, say) takes the pending event over.
        env = {**env, "NOTIFY_CONSUMER_NAME": "notify-other", "NOTIFY_CLAIM_IDLE_MS": "300"}
        with _notifier(settings, tmp_path, env):
            await receiver.up()
            await wait_for(lambda: _arrived(receiver, 1, paths=("/json",)), 15)
            await wait_for(lambda: _nothing_pending(redis, keys), 5)
            await _settle()
        assert len(slack_only.at("/slack")) == 1
        assert len(receiver.at("/json")) == 1
    finally:
        await slack_only.down()


async def _settle() -> None:
    await asyncio.sleep(0.5)  # time enough for a duplicate to show up, were one coming


async def _arrived(receiver: Receiver, count: int, paths: tuple[str, ...] = HOOKS) -> bool:
    return all(len(receiver.at(path)) >= count for path in paths)


async def _nothing_pending(redis: Redis, keys: Keys) -> bool:
    pending = await redis.xpending(keys.events, "notify")
    return int(pending["pending"]) == 0


async def test_two_notifiers_at_once_send_each_notice_once_across_an_outage(
    client: TokenClient,
    redis: Redis,
    keys: Keys,
    settings: ServiceSettings,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    # The one that read the event keeps it while it retries: the other, which takes over
    # what looks abandoned after 600 ms, must not take it and send it as well.
    quick = {"NOTIFY_CLAIM_IDLE_MS": "600"}
    first = _env(receiver, consumer="notify-a", **quick)
    second = _env(receiver, consumer="notify-b", **quick)
    with (
        notifier_process(settings, tmp_path / "a.log", env=first),
        notifier_process(settings, tmp_path / "b.log", env=second),
    ):
        await _ready(redis, keys)
        await _revoke(client, "two-notifiers")

        async def long_failing() -> bool:
            failed = [r for r in await _deliveries(redis, keys) if r["ok"] == "false"]
            return len(failed) >= 16  # well past several claim periods

        await wait_for(long_failing, 20)
        await receiver.up()
        await wait_for(lambda: _arrived(receiver, 1), 15)
        await wait_for(lambda: _nothing_pending(redis, keys), 5)
        await _settle()
    assert len(receiver.at("/slack")) == 1
    assert len(receiver.at("/json")) == 1
    # One notifier did all the work: the other never took the event it kept retrying.
    records = await _deliveries(redis, keys)
    assert len({r["consumer"] for r in records}) == 1, records
