"""IP allowlists per token (version 2.x), against a real redis-server and the running
service: what GenerateToken and UpdateToken store, what the Verifier then accepts and
refuses (with and without its verdict cache), and what the event records."""

from __future__ import annotations

import uuid
from typing import Any

from redis.asyncio import Redis

from contracts import CommandReply, ErrorCode, TokenStatus
from contracts.networks import MAX_CIDRS
from contracts.token_format import secret_digest
from tests.caching import SCOPE, cached_verifier, reads
from tests.conftest import ADMIN
from tests.streams import events_of, listening, send_raw
from token_service.client import TokenClient
from token_service.gateway import Accepted, Rejected, RejectReason, Verifier
from token_service.keys import Keys

ALLOWED = ["10.0.0.0/8", "2001:db8::/32"]


async def _token(client: TokenClient, name: str, **extra: object) -> tuple[str, str]:
    reply = await client.generate(name, [SCOPE], **extra)  # type: ignore[arg-type]
    assert reply.ok, reply.error
    assert reply.token is not None
    assert reply.secret is not None
    return reply.token.id, reply.secret


async def _raw(redis: Redis, keys: Keys, **command: Any) -> CommandReply:
    """Send a command as any publisher may write it (past the client's own checks)."""
    channel = f"{keys.prefix}:replies:raw-{uuid.uuid4().hex}"
    command_id = f"raw-{uuid.uuid4().hex}"
    async with listening(redis, channel) as replies:
        body = {"command_id": command_id, "actor": ADMIN, "reply_to": channel, **command}
        await send_raw(redis, keys.commands, data=body)
        return await replies.wait_for(command_id)


async def _generate_raw(redis: Redis, keys: Keys, allowed: list[str]) -> CommandReply:
    return await _raw(
        redis,
        keys,
        type="GenerateToken",
        name=f"raw-{uuid.uuid4().hex[:8]}",
        scopes=[SCOPE],
        allowed_cidrs=allowed,
    )


def _refused(token_id: str) -> Rejected:
    return Rejected(RejectReason.IP_NOT_ALLOWED, token_id)


async def test_an_allowlisted_token_is_accepted_only_from_its_networks(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    token_id, secret = await _token(client, "office", allowed_cidrs=["10.0.0.0/8", "2001:DB8::/32"])
    verifier = Verifier(redis, key_prefix=keys.prefix)
    assert isinstance(await verifier.verify(secret, SCOPE, client_ip="10.1.2.3"), Accepted)
    assert isinstance(await verifier.verify(secret, SCOPE, client_ip="2001:db8::7"), Accepted)
    # An IPv4 client seen through an IPv6 socket is the IPv4 client.
    assert isinstance(await verifier.verify(secret, SCOPE, client_ip="::ffff:10.9.9.9"), Accepted)
    assert await verifier.verify(secret, SCOPE, client_ip="192.168.1.1") == _refused(token_id)
    assert await verifier.verify(secret, SCOPE, client_ip="2001:db9::1") == _refused(token_id)
    # No address known, or not an address: refused, never waved through.
    assert await verifier.verify(secret, SCOPE) == _refused(token_id)
    assert await verifier.verify(secret, SCOPE, client_ip="nonsense") == _refused(token_id)
    # Refused before the scope is judged: another network learns nothing of the scopes.
    verdict = await verifier.verify(secret, "entities:admin", client_ip="192.168.1.1")
    assert verdict == _refused(token_id)
    # The gateways' one read carries it, normalised.
    stored = await redis.hget(keys.secret(secret_digest(secret)), "allowed_cidrs")
    assert stored == "10.0.0.0/8 2001:db8::/32"


async def test_a_token_without_an_allowlist_is_accepted_from_anywhere(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    token_id, secret = await _token(client, "anywhere")
    verifier = Verifier(redis, key_prefix=keys.prefix)
    assert isinstance(await verifier.verify(secret, SCOPE), Accepted)
    assert isinstance(await verifier.verify(secret, SCOPE, client_ip="192.0.2.1"), Accepted)
    assert not await redis.hexists(keys.secret(secret_digest(secret)), "allowed_cidrs")
    shown = await client.update(token_id, description="still anywhere")
    assert shown.token is not None
    assert shown.token.allowed_cidrs == []


async def test_the_view_and_the_event_show_the_normalised_allowlist(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    reply = await client.generate("shown", [SCOPE], allowed_cidrs=["10.0.0.7", "2001:DB8::/48"])
    assert reply.token is not None
    assert reply.token.allowed_cidrs == ["10.0.0.7/32", "2001:db8::/48"]
    (created,) = await events_of(redis, keys.events, "TokenCreated")
    assert created["allowed_cidrs"] == ["10.0.0.7/32", "2001:db8::/48"]


async def test_bad_networks_are_refused_naming_the_field(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    reply = await _generate_raw(redis, keys, ["10.0.0.7/24", "not-a-network", "::1/129"])
    assert reply.error is not None
    assert reply.error.code is ErrorCode.INVALID
    fields = reply.error.fields or {}
    assert "host bits" in fields["allowed_cidrs.0"]
    assert "10.0.0.0/24" in fields["allowed_cidrs.0"]
    assert "CIDR" in fields["allowed_cidrs.1"]
    assert "CIDR" in fields["allowed_cidrs.2"]
    too_many = [f"10.0.{i}.0/24" for i in range(MAX_CIDRS + 1)]
    reply = await _generate_raw(redis, keys, too_many)
    assert reply.error is not None
    assert "allowed_cidrs" in (reply.error.fields or {})
    twice = await _generate_raw(redis, keys, ["10.0.0.1", "10.0.0.1/32"])
    assert twice.error is not None
    assert "distinct" in (twice.error.fields or {})["allowed_cidrs"]


async def test_an_update_is_followed_by_the_very_next_check_even_through_the_cache(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    token_id, secret = await _token(client, "moving", allowed_cidrs=["10.0.0.0/8"])
    cached = await cached_verifier(redis, keys)
    plain = Verifier(redis, key_prefix=keys.prefix)
    for _ in range(3):
        assert isinstance(await cached.verify(secret, SCOPE, client_ip="10.0.0.1"), Accepted)
    assert await cached.verify(secret, SCOPE, client_ip="192.0.2.1") == _refused(token_id)
    assert cached.cache is not None
    assert cached.cache.hits >= 3
    before = await reads(redis)
    # The cache serves from memory: no read for this check.
    assert isinstance(await cached.verify(secret, SCOPE, client_ip="10.0.0.1"), Accepted)
    assert await reads(redis) == before

    moved = await client.update(token_id, allowed_cidrs=["192.0.2.0/24"])
    assert moved.ok
    for verifier in (cached, plain):
        assert await verifier.verify(secret, SCOPE, client_ip="10.0.0.1") == _refused(token_id)
        assert isinstance(await verifier.verify(secret, SCOPE, client_ip="192.0.2.1"), Accepted)

    opened = await client.update(token_id, allowed_cidrs=[])
    assert opened.token is not None
    assert opened.token.allowed_cidrs == []
    for verifier in (cached, plain):
        assert isinstance(await verifier.verify(secret, SCOPE, client_ip="10.0.0.1"), Accepted)
        assert isinstance(await verifier.verify(secret, SCOPE), Accepted)
    await cached.close()


async def test_an_update_records_old_and_new_values_and_keeps_the_secret(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    token_id, secret = await _token(
        client, "audited", description="first", allowed_cidrs=["10.0.0.0/8"]
    )
    reply = await client.update(
        token_id, description="second", allowed_cidrs=["2001:db8::/32", "192.0.2.1"]
    )
    assert reply.ok
    assert reply.secret is None
    assert reply.token is not None
    assert reply.token.description == "second"
    assert reply.token.allowed_cidrs == ["2001:db8::/32", "192.0.2.1/32"]
    (event,) = await events_of(redis, keys.events, "TokenUpdated")
    assert event["token_id"] == token_id
    assert event["command_id"] is not None
    assert event["changes"] == {
        "description": {"old": "first", "new": "second"},
        "allowed_cidrs": {"old": ["10.0.0.0/8"], "new": ["2001:db8::/32", "192.0.2.1/32"]},
    }
    cleared = await client.update(token_id, description="")
    assert cleared.token is not None
    assert cleared.token.description is None
    assert cleared.token.allowed_cidrs == ["2001:db8::/32", "192.0.2.1/32"]
    last = (await events_of(redis, keys.events, "TokenUpdated"))[-1]
    assert last["changes"] == {"description": {"old": "second", "new": None}}
    verifier = Verifier(redis, key_prefix=keys.prefix)
    assert isinstance(await verifier.verify(secret, SCOPE, client_ip="192.0.2.1"), Accepted)


async def test_a_rotated_secret_keeps_the_allowlist_and_an_update_reaches_both_secrets(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    token_id, old = await _token(client, "rotated", allowed_cidrs=["10.0.0.0/8"])
    rotated = await client.rotate(token_id, grace_seconds=60)
    assert rotated.secret is not None
    new = rotated.secret
    verifier = Verifier(redis, key_prefix=keys.prefix)
    for secret in (old, new):
        assert await verifier.verify(secret, SCOPE, client_ip="192.0.2.1") == _refused(token_id)
    assert (await client.update(token_id, allowed_cidrs=["192.0.2.0/24"])).ok
    for secret in (old, new):
        assert isinstance(await verifier.verify(secret, SCOPE, client_ip="192.0.2.1"), Accepted)
        assert await verifier.verify(secret, SCOPE, client_ip="10.0.0.1") == _refused(token_id)
    # The grace period is untouched by the update.
    assert 0 < await redis.pttl(keys.secret(secret_digest(old))) <= 60_000


async def test_update_is_idempotent_per_command_id_and_refuses_what_it_must(
    client: TokenClient, redis: Redis, keys: Keys
) -> None:
    token_id, _ = await _token(client, "once", allowed_cidrs=["10.0.0.0/8"])
    first = await client.update(token_id, allowed_cidrs=["192.0.2.0/24"], command_id="upd-1")
    again = await client.update(token_id, allowed_cidrs=["192.0.2.0/24"], command_id="upd-1")
    assert first.ok
    assert again.ok
    assert again.duplicate
    other = await client.update(token_id, allowed_cidrs=["198.51.100.0/24"], command_id="upd-1")
    assert other.error is not None
    assert other.error.code is ErrorCode.CONFLICT
    nothing = await _raw(redis, keys, type="UpdateToken", token_id=token_id)
    assert nothing.error is not None
    assert nothing.error.code is ErrorCode.INVALID
    missing = await client.update("01NOSUCHTOKEN", description="x")
    assert missing.error is not None
    assert missing.error.code is ErrorCode.NOT_FOUND
    assert (await client.revoke(token_id)).ok
    late = await client.update(token_id, description="too late")
    assert late.error is not None
    assert late.error.code is ErrorCode.CONFLICT
    assert late.token is None
    shown = await client.update(token_id, allowed_cidrs=["192.0.2.0/24"], command_id="upd-1")
    assert shown.duplicate  # the first outcome, whatever came since
    assert shown.token is not None
    assert shown.token.status is TokenStatus.ACTIVE


async def test_only_administrators_may_update(
    service: object, redis: Redis, keys: Keys, client: TokenClient
) -> None:
    token_id, _ = await _token(client, "guarded", allowed_cidrs=["10.0.0.0/8"])
    async with TokenClient(redis, actor="mallory", key_prefix=keys.prefix, timeout=5) as other:
        reply = await other.update(token_id, allowed_cidrs=[])
    assert reply.error is not None
    assert reply.error.code is ErrorCode.FORBIDDEN
    (rejected,) = await events_of(redis, keys.events, "CommandRejected")
    assert rejected["command_type"] == "UpdateToken"
    assert not await events_of(redis, keys.events, "TokenUpdated")
