"""The replies a command can get, built from what became of it."""

from __future__ import annotations

from contracts import CommandReply, ErrorInfo
from token_service.redis.outcomes import Applied, Remembered
from token_service.redis.records import view_from_record

__all__ = ["applied_reply", "repeat_reply"]


def applied_reply(command_id: str, record: dict[str, str], secret: str | None) -> CommandReply:
    """The reply to a command that changed state; ``secret`` only where one was minted."""
    return CommandReply(
        command_id=command_id, ok=True, token=view_from_record(record), secret=secret
    )


def repeat_reply(command_id: str, first: Remembered) -> CommandReply:
    """The reply to a repeated command: its first outcome, marked, without any secret."""
    if isinstance(first, Applied):
        view = view_from_record(first.record)
        return CommandReply(command_id=command_id, ok=True, duplicate=True, token=view)
    error = ErrorInfo(code=first.code, message=first.message, fields=first.fields)
    return CommandReply(command_id=command_id, ok=False, duplicate=True, error=error)
