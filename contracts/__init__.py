"""The shared language of the token service: commands, events, replies and the token view.

It imports neither Redis nor FastStream, so any Python service can install it.
"""

from contracts._time import (
    TIMESTAMP_PATTERN,
    Timestamp,
    format_timestamp,
    from_millis,
    parse_timestamp,
    to_millis,
    utc_now,
)
from contracts.commands import (
    COMMAND_TYPES,
    Command,
    CommandBase,
    GenerateToken,
    RevokeToken,
    RotateToken,
    UpdateToken,
    command_adapter,
)
from contracts.deadletters import DeadLetter
from contracts.events import (
    CommandRejected,
    Event,
    EventBase,
    LifecycleEvent,
    TokenCreated,
    TokenExpired,
    TokenRevoked,
    TokenRotated,
    TokenUpdated,
    TokenUsed,
    event_adapter,
)
from contracts.replies import CommandReply, Durability, ErrorCode, ErrorInfo
from contracts.scopes import LEVELS, grants
from contracts.tokens import TokenStatus, TokenView

__all__ = [
    "COMMAND_TYPES",
    "LEVELS",
    "TIMESTAMP_PATTERN",
    "Command",
    "CommandBase",
    "CommandRejected",
    "CommandReply",
    "DeadLetter",
    "Durability",
    "ErrorCode",
    "ErrorInfo",
    "Event",
    "EventBase",
    "GenerateToken",
    "LifecycleEvent",
    "RevokeToken",
    "RotateToken",
    "Timestamp",
    "TokenCreated",
    "TokenExpired",
    "TokenRevoked",
    "TokenRotated",
    "TokenStatus",
    "TokenUpdated",
    "TokenUsed",
    "TokenView",
    "UpdateToken",
    "command_adapter",
    "event_adapter",
    "format_timestamp",
    "from_millis",
    "grants",
    "parse_timestamp",
    "to_millis",
    "utc_now",
]
