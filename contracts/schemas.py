"""JSON Schemas of every message, for services written in other languages."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from contracts.commands import GenerateToken, RevokeToken, RotateToken, UpdateToken
from contracts.deadletters import DeadLetter
from contracts.events import (
    CommandRejected,
    TokenCreated,
    TokenExpired,
    TokenRevoked,
    TokenRotated,
    TokenUpdated,
    TokenUsed,
)
from contracts.replies import CommandReply
from contracts.tokens import TokenView

__all__ = ["MESSAGE_MODELS", "json_schemas"]

MESSAGE_MODELS: tuple[type[BaseModel], ...] = (
    GenerateToken,
    RevokeToken,
    RotateToken,
    UpdateToken,
    CommandReply,
    TokenView,
    TokenCreated,
    TokenRevoked,
    TokenRotated,
    TokenUpdated,
    TokenExpired,
    CommandRejected,
    TokenUsed,
    DeadLetter,
)


def json_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per message, keyed by the message's name, as it appears on the wire."""
    return {
        model.__name__: model.model_json_schema(mode="serialization") for model in MESSAGE_MODELS
    }
