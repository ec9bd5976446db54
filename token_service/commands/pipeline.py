"""Batch processing of ``tokens:commands``: per-command semantics, batched round trips.

For a batch of entries: read each entry (:mod:`token_service.commands.decoding`), run the handler,
apply all mutations in one pipeline, record all rejections in a second, then publish
replies, write dead letters and acknowledge in a third. An entry is acknowledged once
its outcome is settled; one whose function Redis could not run stays pending, to be
claimed again after the idle time and dead-lettered after too many deliveries.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
import structlog

from contracts import (
    CommandBase,
    CommandRejected,
    CommandReply,
    ErrorCode,
    ErrorInfo,
    to_millis,
    utc_now,
)
from token_service.commands.aof import AofScrubber
from token_service.commands.decoding import DeadLetter, Invalid, Parsed, open_entry
from token_service.commands.entry import WorkItem, reply_from_outcome
from token_service.commands.handlers import Context, Rejection, handle
from token_service.commands.leaks import rewrite_wanted
from token_service.ops.metrics import CommandMetrics
from token_service.ops.tracing import Tracing
from token_service.redis.deadletters import dead_letter
from token_service.redis.records import view_from_record
from token_service.redis.store import Applied, Failed, Refused, Repeated, TokenStore
from token_service.redis.subscription import StreamEntry, delivery_count
from token_service.settings import ServiceSettings

__all__ = ["GROUP", "CommandProcessor"]

GROUP = "token-service"
_log = structlog.get_logger("token_service.commands")
# The command validates, so the token is in a stream field beside it: refuse it all the same.
_SECRET_BESIDE = Rejection(
    ErrorCode.INVALID, "the entry holds an API token", {"entry": "never send a secret"}
)


class CommandProcessor:
    """Handles batches of command entries for one consumer of the ``token-service`` group."""

    def __init__(
        self,
        store: TokenStore,
        settings: ServiceSettings,
        metrics: CommandMetrics,
        tracing: Tracing,
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.tracing = tracing
        self.keys = store.keys
        self._resources = frozenset(settings.resources)
        self._admins = frozenset(settings.admins)
        self.scrubber = AofScrubber(store.redis)
        """Rewrites the append-only file after an entry holding a token was deleted."""

    def _context(self) -> Context:
        return Context(
            keys=self.keys,
            token_prefix=self.settings.token_prefix,
            resources=self._resources,
            admins=self._admins,
            command_ttl_ms=self.settings.command_ttl_seconds * 1000,
            now=utc_now(),
        )

    async def process(self, entries: Sequence[StreamEntry], claimed: bool = False) -> None:
        """Handle a batch; ``claimed`` entries were taken over from a consumer that stalled."""
        started, started_ns = time.perf_counter(), time.time_ns()
        context = self._context()
        batch = [WorkItem(entry_id.decode(), fields) for entry_id, fields in entries]
        for work in batch:  # before anything else: an entry given up on is scrubbed too
            work.look_for_secrets()
        if claimed:
            await self._give_up_on_repeated_failures(batch)
        oldest_ms = to_millis(context.now) - self.settings.command_ttl_seconds * 1000
        for work in batch:
            if work.settled:
                continue
            if int(work.entry_id.partition("-")[0]) < oldest_ms:
                # Its command id may be forgotten by now: applying it could apply it twice.
                work.dead_reason = "older than the command-id memory; not applied"
                work.settled = True
            else:
                self._prepare(work, context)
        with self.tracing.span("redis apply", {"commands": len(batch)}):
            await self._apply(batch)
        with self.tracing.span("redis record rejections"):
            await self._reject(batch)
        with self.tracing.span("redis settle and reply"):
            await self._finish(batch, started)
        if self.tracing.enabled:
            for work in batch:
                self.tracing.record(
                    f"command {work.command_type}",
                    started_ns,
                    {
                        **work.log_fields(),
                        "outcome": work.outcome() if work.settled else "retry",
                        "reply_channels": len(work.channels) if work.reply else 0,
                    },
                )

    async def _give_up_on_repeated_failures(self, batch: list[WorkItem]) -> None:
        for work in batch:
            deliveries = await delivery_count(
                self.store.redis, self.keys.commands, GROUP, work.entry_id
            )
            if deliveries <= self.settings.max_deliveries:
                continue
            work.settled = True
            opened = open_entry(work.fields)
            if isinstance(opened, Parsed):  # so that the sender hears why
                self._describe(work, opened)
                assert work.command_id is not None
                first = await self.store.outcome_of(work.command_id)
                if first is not None:  # it was applied, only its acknowledgement was lost
                    work.reply = reply_from_outcome(work.command_id, first)
                    continue
            work.dead_reason = f"not handled after {deliveries - 1} deliveries"
            work.dead_code = ErrorCode.INTERNAL

    def _prepare(self, work: WorkItem, context: Context) -> None:
        try:
            opened = open_entry(work.fields)
            if isinstance(opened, DeadLetter):
                work.dead_reason, work.channels = opened.reason, opened.reply_channels
                work.settled = True
            elif isinstance(opened, Invalid):
                work.channels, work.command_type = opened.reply_channels, opened.command_type
                work.command_id, work.actor = opened.command_id, opened.actor
                work.holds_secret = work.holds_secret or opened.holds_secret
                work.rejection = Rejection(
                    ErrorCode.INVALID, "the command breaks the contract", opened.fields
                )
            else:
                self._describe(work, opened)
                outcome = _SECRET_BESIDE if work.holds_secret else handle(opened.command, context)
                if isinstance(outcome, Rejection):
                    work.rejection = outcome
                else:
                    work.mutation = outcome
        except Exception as exc:  # a bug must not block the stream: park the entry
            _log.exception("command_preparation_failed", **work.log_fields())
            work.dead_reason = f"internal error while reading: {type(exc).__name__}"
            work.settled = True

    @staticmethod
    def _describe(work: WorkItem, parsed: Parsed) -> None:
        command: CommandBase = parsed.command
        work.channels = parsed.reply_channels
        work.command_type = type(command).__name__
        work.command_id = command.command_id
        work.actor = command.actor
        work.token_id = getattr(command, "token_id", None)

    async def _apply(self, batch: list[WorkItem]) -> None:
        pending = [w for w in batch if w.mutation is not None]
        outcomes = await self.store.apply([w.mutation for w in pending if w.mutation])
        for work, outcome in zip(pending, outcomes, strict=True):
            assert work.mutation is not None
            assert work.command_id is not None
            if isinstance(outcome, Applied):
                work.reply = CommandReply(
                    command_id=work.command_id,
                    ok=True,
                    token=view_from_record(outcome.record),
                    secret=work.mutation.secret,
                )
                work.token_id = work.mutation.token_id
                work.settled = True
            elif isinstance(outcome, Repeated):
                work.reply = reply_from_outcome(work.command_id, outcome.outcome)
                work.settled = True
            elif isinstance(outcome, Refused):
                token_id = None if work.mutation.function == "generate" else work.mutation.token_id
                work.rejection = Rejection(ErrorCode(outcome.code), outcome.message, None, token_id)
            else:
                self._failed(work, outcome)

    async def _reject(self, batch: list[WorkItem]) -> None:
        recorded: list[WorkItem] = []
        calls: list[tuple[str, bytes, bytes]] = []
        for work in batch:
            if work.rejection is None or work.settled:
                continue
            rejection = work.rejection
            error = ErrorInfo(
                code=rejection.code, message=rejection.message, fields=rejection.fields
            )
            work.reply = CommandReply(command_id=work.command_id, ok=False, error=error)
            event = self._rejected_event(work, rejection.code.value, rejection.message)
            if work.command_id is None:  # nothing to remember it by
                work.events.append(event)
                work.settled = True
                continue
            outcome = orjson.dumps(
                {"ok": False, "error": error.model_dump(mode="json", exclude_none=True)}
            )
            recorded.append(work)
            calls.append((work.command_id, outcome, event))
        for work, result in zip(recorded, await self.store.record_rejections(calls), strict=True):
            if isinstance(result, Repeated):
                assert work.command_id is not None
                work.reply = reply_from_outcome(work.command_id, result.outcome)
                work.settled = True
            elif isinstance(result, Failed):
                work.reply = None
                self._failed(work, result)
            else:
                work.settled = True

    def _rejected_event(self, work: WorkItem, code: str, message: str) -> bytes:
        return CommandRejected(
            actor=work.actor,
            command_id=work.command_id,
            token_id=work.token_id,
            command_type=work.command_type,
            code=code,
            message=message,
        ).to_json()

    def _failed(self, work: WorkItem, failure: Failed) -> None:
        _log.error("command_not_applied", **work.log_fields(), error=str(failure.error))

    def _dead_letter(self, work: WorkItem) -> bytes:
        reason = work.dead_reason or "unknown"
        invalid = work.dead_code is ErrorCode.INVALID
        work.reply = CommandReply(
            command_id=work.command_id,
            ok=False,
            error=ErrorInfo(
                code=work.dead_code,
                message=f"moved to dead-letter: {reason}",
                fields={"data": reason} if invalid else None,
            ),
        )
        work.events.append(self._rejected_event(work, work.dead_code.value, reason))
        return dead_letter(
            stream=self.keys.commands,
            entry_id=work.entry_id,
            fields=work.fields,
            reason=reason,
            consumer=self.settings.consumer_name,
        )

    async def _finish(self, batch: list[WorkItem], started: float) -> None:
        done = [w for w in batch if w.settled]
        if not done:
            return
        # One MULTI: if Redis refuses a write (out of memory), nothing is acknowledged either.
        async with self.store.redis.pipeline(transaction=True) as pipe:
            for work in done:
                if work.dead_reason is not None:
                    pipe.xadd(self.keys.dead_letter, {"data": self._dead_letter(work)})
                for event in work.events:
                    pipe.xadd(self.keys.events, {"data": event})
                if work.reply is not None:
                    payload = work.reply.to_json()
                    for channel in work.channels:
                        pipe.publish(channel, payload)
            pipe.xack(self.keys.commands, GROUP, *[w.entry_id for w in done])
            # A command that carried a real token was refused; its entry must not keep it.
            leaked = [w.entry_id for w in done if w.holds_secret]
            if leaked:
                pipe.xdel(self.keys.commands, *leaked)
            await pipe.execute()
        if leaked:  # XDEL cleared memory; the XADD is still in the append-only file
            found = [w.secrets for w in done if w.holds_secret]
            if await rewrite_wanted(self.store.redis, self.keys, self.settings.token_prefix, found):
                self.scrubber.request()
        elapsed = time.perf_counter() - started
        for work in done:
            outcome = work.log_outcome()
            self.metrics.handled_command(work.command_type, outcome, elapsed)
            if work.dead_reason is not None:
                self.metrics.dead_letters.labels(self.keys.commands).inc()
