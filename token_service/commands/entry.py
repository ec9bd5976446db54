"""One command entry on its way through a batch, and the replies it can get."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from contracts import CommandReply, ErrorCode
from token_service.commands.decoding import secrets_in
from token_service.commands.handlers import Mutation, Rejection
from token_service.redis.records import view_from_record

__all__ = ["WorkItem", "reply_from_outcome"]

_log = structlog.get_logger("token_service.commands")


@dataclass(slots=True)
class WorkItem:
    """One entry on its way through a batch."""

    entry_id: str
    fields: dict[bytes, bytes]
    channels: tuple[str, ...] = ()
    command_type: str = "unknown"
    command_id: str | None = None
    actor: str = "unknown"
    token_id: str | None = None
    mutation: Mutation | None = None
    rejection: Rejection | None = None
    dead_reason: str | None = None
    dead_code: ErrorCode = ErrorCode.INVALID
    reply: CommandReply | None = None
    settled: bool = False
    holds_secret: bool = False
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Tokens found in the entry (kept only until the batch ends, never logged)."""
    events: list[bytes] = field(default_factory=list)

    def log_fields(self) -> dict[str, str | None]:
        """What every log line about this entry carries, as far as it is known."""
        token_id = self.token_id
        if token_id is None and self.reply is not None and self.reply.token is not None:
            token_id = self.reply.token.id
        return {
            "entry_id": self.entry_id,
            "command_id": self.command_id,
            "command_type": self.command_type,
            "actor": self.actor,
            "token_id": token_id,
        }

    def outcome(self) -> str:
        """The settled outcome as metrics and logs name it: ``ok``, ``duplicate``,
        ``dead_letter`` or the error code."""
        if self.dead_reason is not None:
            return "dead_letter"
        if self.reply is not None and self.reply.duplicate:
            return "duplicate"
        if self.reply is not None and self.reply.error is not None:
            return self.reply.error.code.value
        return "ok"

    def look_for_secrets(self) -> None:
        """Note every token the entry holds; on a failure to look, assume it holds one."""
        try:
            self.secrets = tuple(secrets_in(self.fields))
        except Exception:  # refuse and delete rather than risk keeping a token
            _log.exception("secret_scan_failed", **self.log_fields())
            self.holds_secret = True
        self.holds_secret = self.holds_secret or bool(self.secrets)

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


def reply_from_outcome(command_id: str, outcome: dict[str, object]) -> CommandReply:
    """The reply to a repeated command: its first outcome, marked, without any secret."""
    if outcome.get("ok"):
        record = outcome["token"]
        assert isinstance(record, dict)
        return CommandReply(
            command_id=command_id, ok=True, duplicate=True, token=view_from_record(record)
        )
    return CommandReply.model_validate(
        {"command_id": command_id, "ok": False, "duplicate": True, "error": outcome["error"]},
        strict=False,
    )
