"""The batch pipeline of ``tokens:commands``: per-command semantics, batched round trips.

For a batch of entries: read each entry (:mod:`.decoding`), run its handler, carry out
all plans in one pipeline, record all refusals in a second, then publish replies, write
dead letters and events, and acknowledge, in one MULTI (:class:`ConsumerGroup.settle`).
Each entry moves through the stages of :mod:`.entry`; an error while handling one entry
parks that entry alone. One whose function Redis could not run stays pending, to be
claimed again after the idle time and dead-lettered after too many deliveries.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from redis.asyncio.client import Pipeline

from contracts import ErrorCode, to_millis, utc_now
from token_service.commands.admission import admit_channels, refuse_foreign_actor
from token_service.commands.decoding import About, Invalid, Parsed, Unreadable, open_entry
from token_service.commands.durability import await_replicas
from token_service.commands.entry import CommandEntry, Stage
from token_service.commands.handlers import Context, handle
from token_service.commands.replies import applied_reply, repeat_reply
from token_service.leaks import AofScrubber, rewrite_wanted
from token_service.ops.metrics import CommandMetrics
from token_service.ops.tracing import Tracing
from token_service.plans import Issuer, NewToken, Rejection, minted_secret
from token_service.publishers import Source
from token_service.redis.groups import ConsumerGroup, Parked
from token_service.redis.outcomes import Applied, Failed, Outcome, Repeated
from token_service.redis.replication import WritesSeen
from token_service.redis.store import TokenStore
from token_service.redis.subscription import StreamEntry
from token_service.settings import ServiceSettings

__all__ = ["GROUP", "CommandPipeline", "Operations"]

GROUP = "token-service"
_log = structlog.get_logger("token_service.commands")
# The command validates, so the token is in a stream field beside it: refuse it all the same.
_SECRET_BESIDE = Rejection(
    ErrorCode.INVALID, "the entry holds an API token", {"entry": "never send a secret"}
)


@dataclass(frozen=True, slots=True)
class Operations:
    """What every pipeline of a process shares: metrics, tracing and the AOF scrubber."""

    metrics: CommandMetrics
    tracing: Tracing
    scrubber: AofScrubber


class CommandPipeline:
    """Handles batches from one publisher's stream for one consumer of ``token-service``."""

    def __init__(
        self,
        source: Source,
        store: TokenStore,
        group: ConsumerGroup,
        settings: ServiceSettings,
        ops: Operations,
    ) -> None:
        self.source = source
        self.store = store
        self.group = group
        self.settings = settings
        self.metrics = ops.metrics
        self.tracing = ops.tracing
        self.scrubber = ops.scrubber
        """Rewrites the append-only file after an entry holding a token was deleted."""
        self.keys = store.keys
        self._resources = frozenset(settings.resources)
        self._admins = frozenset(settings.admins)

    def context(self) -> Context:
        """What the handlers are given for a batch handled now."""
        return Context(
            token_prefix=self.settings.token_prefix, resources=self._resources, now=utc_now()
        )

    def issuer(self, about: About) -> Issuer:
        """Who sent a command, as the store's atomic step checks it."""
        return Issuer(
            publisher=self.source.publisher.name,
            actor=about.actor,
            command_id=about.command_id or "",
            admin_by_settings=about.actor in self._admins,
            body=about.body,
        )

    async def process(self, entries: Sequence[StreamEntry], claimed: bool = False) -> None:
        """Handle a batch; ``claimed`` entries were taken over from a consumer that stalled."""
        started, started_ns = time.perf_counter(), time.time_ns()
        batch = [CommandEntry(entry_id.decode(), fields) for entry_id, fields in entries]
        for entry in batch:  # before anything else: an entry given up on is scrubbed too
            entry.look_for_secrets()
        if claimed:
            await self._give_up_on_repeated_failures(batch)
        context = self.context()
        oldest_ms = to_millis(context.now) - self.settings.command_ttl_seconds * 1000
        for entry in batch:
            if entry.stage is Stage.OPEN:
                self._open(entry, context, oldest_ms)
        wanted = self.settings.replicas_to_wait_for
        seen = WritesSeen() if wanted > 0 else None
        with self.tracing.span("redis apply", {"commands": len(batch)}):
            await self._apply(batch, seen)
        with self.tracing.span("redis record rejections"):
            await self._record_refusals(batch, seen)
        with self.tracing.span("redis wait for replicas"):
            timeout_ms = self.settings.wait_timeout_ms
            await await_replicas(batch, self.store, wanted, timeout_ms, seen)
        with self.tracing.span("redis settle and reply"):
            await self._settle(batch, started)
        self._trace(batch, started_ns)

    async def _give_up_on_repeated_failures(self, batch: list[CommandEntry]) -> None:
        for entry in batch:
            reason = await self.group.given_up(entry.entry_id)
            if reason is None:
                continue
            try:
                opened = open_entry(entry.fields)
                if isinstance(opened, Parsed):  # so that the sender hears why
                    entry.describe(admit_channels(self.source, opened.about)[0])
                    first = await self.store.outcome_of(self.issuer(opened.about))
                    if first is not None:  # it was applied, only its acknowledgement was lost
                        entry.answer(repeat_reply(opened.command.command_id, first))
                        continue
            except Exception as exc:  # still give it up, whatever went wrong reading it
                _log.warning("give_up_read_failed", **entry.log_fields(), error=repr(exc))
            entry.park(reason, ErrorCode.INTERNAL)

    def _open(self, entry: CommandEntry, context: Context, oldest_ms: int) -> None:
        try:
            if int(entry.entry_id.partition("-")[0]) < oldest_ms:
                # Its command id may be forgotten by now: applying it could apply it twice.
                entry.park("older than the command-id memory; not applied")
                return
            opened = open_entry(entry.fields)
            if isinstance(opened, Unreadable):
                unreadable = About(
                    command_id=opened.command_id, reply_channels=opened.reply_channels
                )
                about, _ = admit_channels(self.source, unreadable)
                entry.describe(about)
                entry.park(opened.reason)
                return
            about, misdirected = admit_channels(self.source, opened.about)
            entry.describe(about)
            if isinstance(opened, Invalid):
                entry.holds_secret = entry.holds_secret or opened.holds_secret
                entry.refuse(opened.rejection)
            elif misdirected is not None:
                entry.refuse(misdirected)
            elif (not_entitled := refuse_foreign_actor(self.source, about.actor)) is not None:
                entry.refuse(not_entitled)
            elif entry.holds_secret:
                entry.refuse(_SECRET_BESIDE)
            else:
                planned = handle(opened.command, self.issuer(about), context)
                if isinstance(planned, Rejection):
                    entry.refuse(planned)
                else:
                    entry.plan_to(planned)
        except Exception as exc:  # a bug must not block the stream: park the entry
            self._park_after_error(entry, "reading", exc)

    def _park_after_error(self, entry: CommandEntry, during: str, exc: Exception) -> None:
        event = "command_preparation_failed" if during == "reading" else "command_answer_failed"
        _log.exception(event, **entry.log_fields())
        entry.park(f"internal error while {during}: {type(exc).__name__}", ErrorCode.INTERNAL)

    async def _apply(self, batch: list[CommandEntry], seen: WritesSeen | None) -> None:
        planned = [
            entry for entry in batch if entry.plan is not None and entry.stage is Stage.PLANNED
        ]
        outcomes = await self.store.apply([entry.plan for entry in planned if entry.plan], seen)
        for entry, outcome in zip(planned, outcomes, strict=True):
            try:
                self._applied(entry, outcome)
            except Exception as exc:  # one entry's trouble stays with that entry
                self._park_after_error(entry, "answering", exc)

    @staticmethod
    def _applied(entry: CommandEntry, outcome: Outcome) -> None:
        plan = entry.plan
        command_id = entry.about.command_id
        assert plan is not None
        assert command_id is not None
        if isinstance(outcome, Applied):
            entry.answer(applied_reply(command_id, outcome.record, minted_secret(plan)))
        elif isinstance(outcome, Repeated):
            entry.answer(repeat_reply(command_id, outcome.first))
        elif isinstance(outcome, Rejection):
            token_id = None if isinstance(plan, NewToken) else plan.token_id
            entry.refuse(Rejection(outcome.code, outcome.message, None, token_id))
        else:
            entry.leave_pending(outcome.error)

    async def _record_refusals(self, batch: list[CommandEntry], seen: WritesSeen | None) -> None:
        recorded: list[tuple[CommandEntry, Rejection]] = []
        calls: list[tuple[Issuer, Rejection, bytes]] = []
        for entry in batch:
            rejection = entry.rejection
            if entry.stage is not Stage.REFUSED or rejection is None:
                continue
            # Nothing to remember it by; or refused to a sender with no right to act, whose
            # refusals must cost no memory (and must not take an administrator's id).
            if entry.about.command_id is None or rejection.code is ErrorCode.FORBIDDEN:
                entry.answer_refusal(rejection, audit_now=True)
                continue
            event = entry.rejected_event(rejection.code, rejection.message)
            recorded.append((entry, rejection))
            calls.append((self.issuer(entry.about), rejection, event))
        results = await self.store.record_rejections(calls, seen)
        for (entry, rejection), result in zip(recorded, results, strict=True):
            try:
                if isinstance(result, Repeated):
                    entry.answer(repeat_reply(entry.about.command_id or "", result.first))
                elif isinstance(result, Failed):
                    entry.leave_pending(result.error)
                elif isinstance(result, Rejection):  # the id was used for another command
                    entry.answer_refusal(result, audit_now=True)
                else:
                    entry.answer_refusal(rejection, audit_now=False)
            except Exception as exc:
                self._park_after_error(entry, "answering", exc)

    def _writes(self, done: list[CommandEntry]) -> tuple[list[Parked], list[str]]:
        parked = [
            Parked(entry.entry_id, entry.fields, entry.dead_reason or "unknown")
            for entry in done
            if entry.stage is Stage.PARKED
        ]
        answered = [entry.entry_id for entry in done if entry.stage is Stage.ANSWERED]
        return parked, answered

    async def _settle(self, batch: list[CommandEntry], started: float) -> None:
        done = [entry for entry in batch if entry.settled]
        if not done:
            return
        parked, answered = self._writes(done)
        # A command that carried a real token was refused; its entry must not keep it.
        leaked = [entry for entry in done if entry.holds_secret]

        def events_replies_and_deletes(pipe: Pipeline) -> None:
            for entry in done:
                for event in entry.events:
                    pipe.xadd(self.keys.events, {"data": event})
                payload = self._reply_payload(entry)
                for channel in entry.about.reply_channels if payload else ():
                    pipe.publish(channel, payload)
            if leaked:
                pipe.xdel(self.keys.commands, *[entry.entry_id for entry in leaked])

        await self.group.settle(answered, parked, also=events_replies_and_deletes)
        if leaked:  # XDEL cleared memory; the XADD is still in the append-only file
            found = [entry.secrets for entry in leaked]
            if await rewrite_wanted(self.store.redis, self.keys, self.settings.token_prefix, found):
                self.scrubber.request()
        elapsed = time.perf_counter() - started
        for entry in done:
            outcome = entry.log_outcome()
            self.metrics.handled_command(entry.about.command_type, outcome, elapsed)
            if entry.stage is Stage.PARKED:
                self.metrics.dead_letters.labels(self.keys.commands).inc()

    @staticmethod
    def _reply_payload(entry: CommandEntry) -> bytes:
        try:
            return entry.reply.to_json() if entry.reply is not None else b""
        except Exception:  # this entry goes unanswered; the others still are
            _log.exception("reply_encoding_failed", **entry.log_fields())
            return b""

    def _trace(self, batch: list[CommandEntry], started_ns: int) -> None:
        if not self.tracing.enabled:
            return
        for entry in batch:
            attributes = {
                **entry.log_fields(),
                "outcome": entry.outcome(),
                "reply_channels": len(entry.about.reply_channels) if entry.reply else 0,
            }
            self.tracing.record(f"command {entry.about.command_type}", started_ns, attributes)
