"""Hostile input on ``tokens:commands``: every bad entry is answered or parked, nothing breaks.

Hypothesis throws batches of bad entries at a real service process with raw XADD:
garbage and non-JSON bytes, invalid UTF-8, control characters, 1 MB strings, 10,000-level
nesting, wrongly typed, missing and extra fields, Lua-looking text, huge arrays, pasted
(checksum-valid) tokens, other stream fields and FastStream envelopes, with valid commands
in between. Each bad entry must get a rejection reply (code, message, and for ``invalid``
the fields at fault) on its ``reply_to`` when that is usable, and otherwise a dead letter
or a ``CommandRejected`` event. Every valid command must succeed, no entry may stay
pending, no pasted token may stay anywhere, and the process must still be running.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from hypothesis import HealthCheck, example, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from contracts import CommandReply
from contracts.token_format import find_tokens, is_well_formed
from tests.faults import until
from tests.fuzz_entries import (
    KNOWN_HOSTILE,
    Planned,
    Probe,
    Sent,
    bad_entries_with_valid_commands_between,
    sort_out,
)
from tests.fuzz_strategies import bad_entries
from tests.leaks import tokens_in_lines, tokens_in_redis
from tests.processes import service_process
from token_service.commands.pipeline import GROUP
from token_service.keys import Keys
from token_service.settings import ServiceSettings

EXAMPLES = 150
CODES = {"invalid", "forbidden", "not_found", "conflict", "internal"}


@dataclass
class Tally:
    """What the whole run did, for the figures."""

    kinds: Counter[str] = field(default_factory=Counter)
    replies: int = 0
    dead_letters: int = 0
    rejected_events: int = 0
    valid_ok: int = 0
    deleted: int = 0
    rounds: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    live_tokens: list[str] = field(default_factory=list)


class Inbox:
    """Replies on every fuzzed channel, by channel."""

    def __init__(self) -> None:
        self.by_channel: dict[str, list[str]] = {}

    async def wait(self, channel: str, limit_s: float = 10.0) -> str:
        """The first reply published on ``channel``, waiting up to ``limit_s`` for it."""
        deadline = asyncio.get_running_loop().time() + limit_s
        while channel not in self.by_channel:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no reply on {channel}")
            await asyncio.sleep(0.01)
        return self.by_channel[channel][0]


@asynccontextmanager
async def replies_on(redis: Redis, pattern: str) -> AsyncIterator[Inbox]:
    """Collect every reply on channels matching ``pattern`` while the block runs."""
    inbox = Inbox()
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe(pattern)

    async def pump() -> None:
        async for message in pubsub.listen():
            inbox.by_channel.setdefault(message["channel"], []).append(message["data"])

    task = asyncio.create_task(pump())
    try:
        yield inbox
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()  # type: ignore[no-untyped-call]


def _channels(keys: Keys) -> str:
    """What the fuzzed entries' reply channels start with (under the reply prefix)."""
    return f"{keys.replies_prefix}fz-"


async def _settled(redis: Redis, keys: Keys, last_id: str) -> bool:
    groups = await redis.xinfo_groups(keys.commands)
    (group,) = [g for g in groups if g["name"] == GROUP]
    delivered = tuple(int(p) for p in group["last-delivered-id"].split("-"))
    if delivered < tuple(int(p) for p in last_id.split("-")):
        return False
    return int((await redis.xpending(keys.commands, GROUP))["pending"]) == 0


async def _since(redis: Redis, stream: str, after: str) -> list[dict[str, Any]]:
    raw = cast(list[tuple[str, dict[str, str]]], await redis.xrange(stream, min=f"({after}"))
    return [orjson.loads(fields["data"]) for _, fields in raw]


async def _last_id(redis: Redis, stream: str) -> str:
    newest = cast(list[tuple[str, object]], await redis.xrevrange(stream, count=1))
    return newest[0][0] if newest else "0-0"


async def _write(redis: Redis, keys: Keys, plan: list[Planned]) -> list[str]:
    """XADD every planned entry at once; their entry ids."""
    async with redis.pipeline(transaction=False) as pipe:
        for planned in plan:
            pipe.xadd(keys.commands, planned.fields)  # type: ignore[arg-type]
        return cast(list[str], await pipe.execute())


async def _valid_commands_succeeded(inbox: Inbox, valid: list[Planned], tally: Tally) -> None:
    for kind, _, channel, command_id in valid:
        reply = CommandReply.model_validate_json(await inbox.wait(channel))
        assert reply.ok, f"{kind} {command_id} failed: {reply.error}"
        tally.valid_ok += 1
        if kind == "valid:GenerateToken":
            assert reply.secret is not None
            assert is_well_formed(reply.secret)
            assert reply.token is not None
            tally.live_tokens.append(reply.token.id)


@dataclass
class Parked:
    """What the round left on the dead-letter stream and as ``CommandRejected`` events."""

    letters: set[str]
    rejected_ids: set[str | None]
    anonymous: int


async def _parked_since(redis: Redis, keys: Keys, marks: dict[str, str], tally: Tally) -> Parked:
    letters = {
        d["entry_id"] for d in await _since(redis, keys.dead_letter, marks[keys.dead_letter])
    }
    rejected = [
        e
        for e in await _since(redis, keys.events, marks[keys.events])
        if e["type"] == "CommandRejected"
    ]
    by_id = {e["command_id"] for e in rejected}
    anonymous = sum(e["command_id"] is None for e in rejected)
    tally.dead_letters += len(letters)
    tally.rejected_events += len(rejected)
    return Parked(letters, by_id, anonymous)


async def _rejection_replied(inbox: Inbox, entry: Sent, tally: Tally) -> None:
    """A rejection on the entry's channel, with a code, a message, the fields at fault for
    ``invalid``, and no token."""
    raw = await inbox.wait(entry.channel)
    reply = CommandReply.model_validate_json(raw)
    assert not reply.ok, f"{entry.kind} entry {entry.entry_id} was accepted"
    assert reply.error is not None
    assert reply.error.code in CODES
    assert reply.error.message
    if reply.error.code == "invalid":
        assert reply.error.fields, f"{entry.kind}: invalid without the fields at fault"
    assert find_tokens(raw, glued=True) == [], "a reply echoes a token"
    tally.replies += 1
    tally.codes[reply.error.code] += 1


async def _each_bad_entry_answered_or_parked(
    redis: Redis, keys: Keys, inbox: Inbox, sent: list[Sent], parked: Parked, tally: Tally
) -> None:
    """A reply where one is owed, else a dead letter or an event; and an entry holding a
    token deleted from the stream."""
    unaccounted = 0
    for entry in sent:
        if entry.reply_owed:
            await _rejection_replied(inbox, entry, tally)
        elif entry.entry_id not in parked.letters and not (
            entry.carries_id and entry.command_id in parked.rejected_ids
        ):
            unaccounted += 1
        if entry.holds_token:
            assert await redis.xrange(keys.commands, min=entry.entry_id, max=entry.entry_id) == []
            tally.deleted += 1
    assert unaccounted <= parked.anonymous, (
        f"{unaccounted} bad entries left no reply, letter or event"
    )


async def _round(redis: Redis, keys: Keys, inbox: Inbox, batch: list[Probe], tally: Tally) -> None:
    tally.rounds += 1
    marks = {s: await _last_id(redis, s) for s in (keys.dead_letter, keys.events)}
    plan = bad_entries_with_valid_commands_between(batch, tally.live_tokens, _channels(keys))
    ids = await _write(redis, keys, plan)
    sent, valid = sort_out(plan, ids, tally.kinds)
    await until(lambda: _settled(redis, keys, ids[-1]), 30, "every entry settled")
    await _valid_commands_succeeded(inbox, valid, tally)
    parked = await _parked_since(redis, keys, marks, tally)
    await _each_bad_entry_answered_or_parked(redis, keys, inbox, sent, parked, tally)


async def _connect(settings: ServiceSettings) -> Redis:
    redis = Redis.from_url(settings.redis_url or "", decode_responses=True)
    await until(lambda: _group_exists(redis, Keys(settings.key_prefix)), 30, "service up")
    return redis


async def _group_exists(redis: Redis, keys: Keys) -> bool:
    if not await redis.exists(keys.commands):
        return False
    return any(g["name"] == GROUP for g in await redis.xinfo_groups(keys.commands))


async def _still_there(redis: Redis, keys: Keys, token_ids: list[str]) -> int:
    return sum([await redis.exists(keys.token(token_id)) for token_id in token_ids])


@pytest.mark.slow
def test_hostile_entries_are_answered_or_parked_and_the_service_stays_up(
    settings: ServiceSettings, tmp_path: Path
) -> None:
    run_seed = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
    print(f"\nFIGURES command-fuzz: seed={run_seed} (FUZZ_SEED={run_seed} repeats this run)")
    keys = Keys(settings.key_prefix)
    log = tmp_path / "service.log"
    tally = Tally()
    with service_process(settings, log) as process, asyncio.Runner() as runner:
        redis = runner.run(_connect(settings))
        inbox_context = replies_on(redis, f"{_channels(keys)}*")
        inbox = runner.run(inbox_context.__aenter__())
        try:

            @seed(run_seed)
            @hypothesis_settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,  # failing examples may hold tokens: keep them off the disk
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(st.lists(bad_entries, min_size=1, max_size=6))
            @example(KNOWN_HOSTILE[: len(KNOWN_HOSTILE) // 2])
            @example(KNOWN_HOSTILE[len(KNOWN_HOSTILE) // 2 :])
            def one_round(batch: list[Probe]) -> None:
                assert process.poll() is None, "the service died"
                runner.run(_round(redis, keys, inbox, batch, tally))

            one_round()
            assert process.poll() is None, "the service died"
            kept = runner.run(_still_there(redis, keys, tally.live_tokens))
            leaks = runner.run(
                tokens_in_redis(settings.redis_url or "", f"{settings.key_prefix}:*")
            )
        finally:
            runner.run(inbox_context.__aexit__(None, None, None))
            runner.run(redis.aclose())
        alive = process.poll() is None
    lines = log.read_text().splitlines()
    failures = sum("command_preparation_failed" in line for line in lines)
    codes = dict(sorted((str(code), n) for code, n in tally.codes.items()))
    print(
        f"FIGURES command-fuzz: rounds={tally.rounds} bad_entries={sum(tally.kinds.values())}"
        f" valid_ok={tally.valid_ok} rejection_replies={tally.replies}"
        f" codes={codes} dead_letters={tally.dead_letters}"
        f" command_rejected={tally.rejected_events} token_entries_deleted={tally.deleted}"
        f" preparation_failures={failures} service_alive={alive}"
    )
    print(f"FIGURES command-fuzz: kinds={dict(sorted(tally.kinds.items()))}")
    assert alive
    assert tally.valid_ok > 0
    assert kept == len(tally.live_tokens), "a token valid commands made is gone"
    assert leaks == []
    assert tokens_in_lines(lines) == []
    assert failures == 0, "an entry raised while being read: see command_preparation_failed"
