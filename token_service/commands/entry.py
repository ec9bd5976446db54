"""One command entry on its way through a batch, moved only by its named transitions.

    OPEN ──plan──▶ PLANNED ──answer──▶ ANSWERED
      │               │ └──refuse──▶ REFUSED ──answer──▶ ANSWERED
      │               └──leave_pending──▶ PENDING   (Redis could not run it: retried later)
      ├──refuse──▶ REFUSED ──(recorded)──▶ ANSWERED
      ├──answer──▶ ANSWERED                 (a repeat, or given up after it was applied)
      └──park────▶ PARKED                   (dead-lettered, and told so)

An entry is *settled* once ANSWERED or PARKED: its outcome is final, it is acknowledged,
and its reply goes out. A PENDING entry stays unacknowledged, to be delivered again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import structlog

from contracts import CommandRejected, CommandReply, ErrorCode, ErrorInfo
from token_service.commands.decoding import About
from token_service.leaks import secrets_in
from token_service.plans import Plan, Rejection

__all__ = ["CommandEntry", "Stage"]

_log = structlog.get_logger("token_service.commands")


class Stage(Enum):
    """Where an entry is in its batch."""

    OPEN = "open"
    PLANNED = "planned"
    REFUSED = "refused"
    PENDING = "pending"
    ANSWERED = "answered"
    PARKED = "parked"


@dataclass(slots=True)
class CommandEntry:
    """One entry of a batch; read :attr:`stage`, change it only through the transitions."""

    entry_id: str
    fields: dict[bytes, bytes] = field(repr=False)
    about: About = field(default_factory=About)
    stage: Stage = Stage.OPEN
    plan: Plan | None = None
    rejection: Rejection | None = None
    reply: CommandReply | None = None
    dead_reason: str | None = None
    dead_code: ErrorCode = ErrorCode.INVALID
    holds_secret: bool = False
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Tokens found in the entry (kept only until the batch ends, never logged)."""
    events: list[bytes] = field(default_factory=list)
    """Events to write when the entry settles (a refusal nobody can look up again)."""

    @property
    def settled(self) -> bool:
        """Whether the outcome is final: acknowledged and answered in this batch."""
        return self.stage in (Stage.ANSWERED, Stage.PARKED)

    def _move(self, to: Stage, *allowed: Stage) -> None:
        if self.stage not in allowed:
            raise RuntimeError(f"entry {self.entry_id}: {self.stage.name} cannot become {to.name}")
        self.stage = to

    def describe(self, about: About) -> None:
        """Record what the entry turned out to be."""
        self.about = about

    def plan_to(self, plan: Plan) -> None:
        """The handler planned a change."""
        self._move(Stage.PLANNED, Stage.OPEN)
        self.plan = plan

    def refuse(self, rejection: Rejection) -> None:
        """Refused, before or by Redis; the refusal is recorded next."""
        self._move(Stage.REFUSED, Stage.OPEN, Stage.PLANNED)
        self.rejection = rejection
        if rejection.token_id is not None:
            self.about = _with_token(self.about, rejection.token_id)

    def answer(self, reply: CommandReply) -> None:
        """The outcome is final; ``reply`` goes to the publisher."""
        self._move(Stage.ANSWERED, Stage.OPEN, Stage.PLANNED, Stage.REFUSED)
        self.reply = reply

    def answer_refusal(self, rejection: Rejection, *, audit_now: bool) -> None:
        """Answer a refusal; with ``audit_now`` its event is written as the entry settles."""
        error = ErrorInfo(code=rejection.code, message=rejection.message, fields=rejection.fields)
        if audit_now:
            self.events.append(self.rejected_event(rejection.code, rejection.message))
        self.answer(CommandReply(command_id=self.about.command_id, ok=False, error=error))

    def park(self, reason: str, code: ErrorCode = ErrorCode.INVALID) -> None:
        """Move the entry to the dead letters; the publisher hears why."""
        self._move(Stage.PARKED, Stage.OPEN, Stage.PLANNED, Stage.REFUSED, Stage.PENDING)
        self.dead_reason, self.dead_code = reason, code
        error = ErrorInfo(
            code=code,
            message=f"moved to dead-letter: {reason}",
            fields={"data": reason} if code is ErrorCode.INVALID else None,
        )
        self.reply = CommandReply(command_id=self.about.command_id, ok=False, error=error)
        self.events.append(self.rejected_event(code, reason))

    def leave_pending(self, error: Exception) -> None:
        """Redis could not carry it out: leave it unacknowledged, to be delivered again."""
        self._move(Stage.PENDING, Stage.PLANNED, Stage.REFUSED)
        _log.error("command_not_applied", **self.log_fields(), error=str(error))

    def rejected_event(self, code: ErrorCode, message: str) -> bytes:
        """The ``CommandRejected`` event for this entry."""
        about = self.about
        return CommandRejected(
            actor=about.actor,
            command_id=about.command_id,
            token_id=about.token_id,
            command_type=about.command_type,
            code=code.value,
            message=message,
        ).to_json()

    def look_for_secrets(self) -> None:
        """Note every token the entry holds; on a failure to look, assume it holds one."""
        try:
            self.secrets = tuple(secrets_in(self.fields))
        except Exception:  # refuse and delete rather than risk keeping a token
            _log.exception("secret_scan_failed", **self.log_fields())
            self.holds_secret = True
        self.holds_secret = self.holds_secret or bool(self.secrets)

    def log_fields(self) -> dict[str, str | None]:
        """What every log line about this entry carries, as far as it is known."""
        token_id = self.about.token_id
        if token_id is None and self.reply is not None and self.reply.token is not None:
            token_id = self.reply.token.id
        return {
            "entry_id": self.entry_id,
            "command_id": self.about.command_id,
            "command_type": self.about.command_type,
            "actor": self.about.actor,
            "token_id": token_id,
        }

    def outcome(self) -> str:
        """The outcome as metrics and logs name it: ``ok``, ``duplicate``, ``dead_letter``,
        ``retry`` or the error code."""
        if self.stage is Stage.PARKED:
            return "dead_letter"
        reply = self.reply
        if not self.settled or reply is None:
            return "retry"
        if reply.duplicate:
            return "duplicate"
        return reply.error.code.value if reply.error is not None else "ok"

    def log_outcome(self) -> str:
        """Log the settled outcome; returns it as the metrics name it."""
        reply, outcome = self.reply, self.outcome()
        _log.info(
            "command_handled",
            **self.log_fields(),
            ok=bool(reply and reply.ok),
            duplicate=bool(reply and reply.duplicate),
            error=reply.error.code.value if reply and reply.error else None,
            dead_letter=self.dead_reason,
            outcome=outcome,
        )
        return outcome


def _with_token(about: About, token_id: str) -> About:
    return About(about.command_type, about.command_id, about.actor, token_id, about.reply_channels)
