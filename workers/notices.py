"""The notifier's work: events of ``tokens:events`` out to webhooks, each exactly once.

The notifier reads ``tokens:events`` with its own consumer group, ``notify`` (created at
``$``: notices start with the events written after its first start, not with the whole
history). An event of a type it is told to send is *held* until every webhook has it:

- each webhook gets its own attempts, with exponential backoff between them
  (``NOTIFY_RETRY_BASE_S`` doubling up to ``NOTIFY_RETRY_MAX_S``); a receiver that is down
  delays only its own deliveries;
- a delivery that succeeded is written down in the same MULTI as its record
  (``{p}:notify:delivered:<webhook>:<entry id>``), and that marker is looked at before
  every attempt: after a restart, or when another consumer takes the event over, a
  webhook that has the event does not get it again;
- only when every webhook has it is the event acknowledged (XACK). Until then it stays in
  the group's pending list: a notifier that dies loses nothing, the next one (or the
  same one restarted) reads its pending entries first and takes over another consumer's
  after ``NOTIFY_CLAIM_IDLE_MS``.

Every attempt is recorded on ``{p}:notify:deliveries`` (webhook, event, attempt number,
HTTP status or error, time). A webhook still failing ``NOTIFY_GIVE_UP_AFTER_S`` after its
first attempt gets a dead letter instead, which says which webhook and why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from contracts import format_timestamp, utc_now
from token_service.keys import Keys
from token_service.redis.deadletters import dead_letter_entry
from workers.notify_metrics import NotifyMetrics
from workers.notify_settings import NotifySettings, Webhook
from workers.webhooks import Attempt, body_for, post

__all__ = ["GROUP", "Held", "Notifier"]

GROUP = "notify"
_log = structlog.get_logger("workers.notify")
_DELIVERIES_KEPT = 100_000
_CONCURRENCY = 16


Entry = tuple[bytes, dict[bytes, bytes] | None]
"""A stream entry as XREADGROUP answers it (no fields: deleted since)."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entries(reply: Any) -> list[Entry]:
    # redis-py's types cannot say what a RESP2 XREADGROUP of one stream answers.
    return list(reply[0][1]) if reply else []


@dataclass(slots=True)
class Held:
    """An event some webhooks still wait for: when each may be tried next, from when."""

    entry_id: str
    raw: bytes
    event: dict[str, Any]
    next_at: dict[str, float]
    first_failed_at: dict[str, float] = field(default_factory=dict)


class Notifier:
    """One consumer of group ``notify``; :meth:`step` does one round of work."""

    def __init__(
        self,
        redis: Redis,
        settings: NotifySettings,
        metrics: NotifyMetrics,
        session: aiohttp.ClientSession,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.metrics = metrics
        self.session = session
        self.keys = Keys(settings.key_prefix)
        self.stream = self.keys.events
        self.held: dict[str, Held] = {}
        self._clock = clock
        self._hooks = {hook.name: hook for hook in settings.webhooks}
        self._types = frozenset(settings.event_types)
        self._pending_cursor: str | None = "0"
        self._next_claim = 0.0
        self._claim_cursor = "0-0"
        self._next_keep = 0.0
        self._limit = asyncio.Semaphore(_CONCURRENCY)
        self._ttl_ms = settings.delivered_days * 86_400_000

    async def prepare(self) -> None:
        """Create the group at ``$`` unless it exists: notices are for what happens next."""
        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def step(self) -> None:
        """Take in what there is to take in, then make every delivery that is due."""
        self._admit(await self._read())
        await self._keep_ownership()
        await self._deliver_due()
        self.metrics.held.set(len(self.held))

    def _wait_ms(self) -> int:
        waits = [at for held in self.held.values() for at in held.next_at.values()]
        until_retry = (min(waits) - self._clock()) * 1000 if waits else self.settings.poll_ms
        # XREADGROUP's BLOCK 0 would wait forever: at least a millisecond.
        return max(1, min(self.settings.poll_ms, int(until_retry)))

    async def _read(self) -> list[Entry]:
        s, consumer = self.settings, self.settings.consumer_name
        if self._pending_cursor is not None:  # what this consumer read before a restart
            reply = await self.redis.xreadgroup(
                GROUP, consumer, {self.stream: self._pending_cursor}, count=s.batch_size
            )
            entries = _entries(reply)
            self._pending_cursor = entries[-1][0].decode() if entries else None
            return [e for e in entries if e[0].decode() not in self.held]
        if self._clock() >= self._next_claim:
            self._next_claim = self._clock() + s.claim_idle_ms / 2000
            claimed = await self.redis.xautoclaim(
                self.stream,
                GROUP,
                consumer,
                s.claim_idle_ms,
                self._claim_cursor,
                count=s.batch_size,
            )
            self._claim_cursor = _text(claimed[0])
            fresh = [e for e in cast(list[Entry], claimed[1]) if e[0].decode() not in self.held]
            if fresh:
                return list(fresh)
        if len(self.held) >= s.max_in_flight:
            await asyncio.sleep(self._wait_ms() / 1000)
            return []
        reply = await self.redis.xreadgroup(
            GROUP, consumer, {self.stream: ">"}, count=s.batch_size, block=self._wait_ms()
        )
        return _entries(reply)

    async def _keep_ownership(self) -> None:
        """Drop what another consumer took over; keep what is still ours from looking idle.

        Retrying does not touch an entry in Redis' eyes, so a held entry would look
        abandoned to another notifier after ``NOTIFY_CLAIM_IDLE_MS``: it is claimed again
        here (JUSTID, which only resets its idle time) well before that.
        """
        if not self.held or self._pending_cursor is not None or self._clock() < self._next_keep:
            return
        self._next_keep = self._clock() + self.settings.claim_idle_ms / 3000
        consumer = self.settings.consumer_name
        pending = await self.redis.xpending_range(
            self.stream, GROUP, "-", "+", len(self.held) + self.settings.batch_size, consumer
        )
        ours = {_text(p["message_id"]) for p in pending}
        for entry_id in [entry_id for entry_id in self.held if entry_id not in ours]:
            del self.held[entry_id]  # another consumer has it now, and delivers it
        if ours:
            ids: list[int | bytes | str | memoryview] = [*sorted(ours)]
            await self.redis.xclaim(self.stream, GROUP, consumer, 0, ids, justid=True)

    def _admit(self, entries: list[Entry]) -> None:
        passed_over = []
        now = self._clock()
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            raw = (fields or {}).get(b"data", b"")
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError:
                event = None
            if not isinstance(event, dict) or event.get("type") not in self._types:
                passed_over.append(entry_id)
                continue
            self.held[entry_id] = Held(entry_id, raw, event, dict.fromkeys(self._hooks, now))
        if passed_over:
            self._acknowledge_soon(passed_over)

    def _acknowledge_soon(self, entry_ids: list[str]) -> None:
        # Acknowledged with the next round's deliveries: not a notice, nothing to wait for.
        for entry_id in entry_ids:
            self.held[entry_id] = Held(entry_id, b"", {}, {})

    async def _deliver_due(self) -> None:
        now = self._clock()
        due = [
            (held, self._hooks[name])
            for held in self.held.values()
            for name, at in held.next_at.items()
            if at <= now
        ]
        await asyncio.gather(*(self._deliver(held, hook) for held, hook in due))
        done = [held for held in self.held.values() if not held.next_at]
        if not done:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, *[held.entry_id for held in done])
            for held in done:
                for name in self._hooks:
                    pipe.delete(self.keys.notify_attempts(name, held.entry_id))
            await pipe.execute()
        for held in done:
            del self.held[held.entry_id]

    async def _deliver(self, held: Held, hook: Webhook) -> None:
        entry_id, name = held.entry_id, hook.name
        async with self._limit:
            if await self.redis.exists(self.keys.notify_delivered(name, entry_id)):
                held.next_at.pop(name, None)  # it has it: sent before a restart
                return
            attempts_key = self.keys.notify_attempts(name, entry_id)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(attempts_key)
                pipe.pexpire(attempts_key, self._ttl_ms)
                number = int((await pipe.execute())[0])
            event_id = str(held.event.get("event_id") or entry_id)
            body = body_for(hook, held.event, held.raw)
            secret = self.settings.secret_of(hook)
            attempt = await post(
                self.session, hook, secret, body, event_id, self.settings.timeout_s
            )
        await self._record(held, hook, number, attempt)

    async def _record(self, held: Held, hook: Webhook, number: int, attempt: Attempt) -> None:
        entry_id, name = held.entry_id, hook.name
        record: dict[Any, Any] = {
            "webhook": name,
            "consumer": self.settings.consumer_name,
            "entry_id": entry_id,
            "event_id": str(held.event.get("event_id", "")),
            "type": str(held.event.get("type", "")),
            "attempt": str(number),
            "status": attempt.detail,
            "ok": "true" if attempt.ok else "false",
            "at": format_timestamp(utc_now()),
        }
        now = self._clock()
        give_up = not attempt.ok and (
            now - held.first_failed_at.setdefault(name, now) >= self.settings.give_up_after_s
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.keys.notify_deliveries, record, maxlen=_DELIVERIES_KEPT, approximate=True
            )
            if attempt.ok:
                marker = orjson.dumps(record)
                pipe.set(self.keys.notify_delivered(name, entry_id), marker, px=self._ttl_ms)
            elif give_up:
                letter = dead_letter_entry(
                    stream=self.stream,
                    entry_id=entry_id,
                    fields={b"data": held.raw, b"webhook": name.encode()},
                    reason=f"webhook {name} still failing after {number} attempts: "
                    f"{attempt.detail}",
                    consumer=self.settings.consumer_name,
                )
                pipe.xadd(self.keys.dead_letter, {"data": letter})
            await pipe.execute()
        if attempt.ok or give_up:
            held.next_at.pop(name, None)
            outcome = "delivered" if attempt.ok else "given_up"
        else:
            s = self.settings
            held.next_at[name] = now + min(s.retry_max_s, s.retry_base_s * 2 ** (number - 1))
            outcome = "failed"
        self.metrics.deliveries.labels(name, outcome).inc()
        _log.info(
            "notice_" + outcome,
            webhook=name,
            entry_id=entry_id,
            attempt=number,
            status=attempt.detail,
        )
