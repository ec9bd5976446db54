"""Command handlers: plain functions from a command to the plan that carries it out.

A handler checks what it can without Redis and returns a plan (``token_service.plans``)
or a :class:`~token_service.plans.Rejection`. It mints secrets and writes the event the
plan will store; it never talks to Redis. Checks that need state (administrators, names,
status) run in the store's atomic step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ulid import ULID

from contracts import (
    CommandBase,
    ErrorCode,
    GenerateToken,
    RevokeToken,
    RotateToken,
    TokenCreated,
    TokenRevoked,
    TokenRotated,
    TokenUpdated,
    UpdateToken,
)
from contracts.scopes import resource_of
from contracts.token_format import hint, mint, secret_digest
from token_service.plans import Issuer, NewToken, Plan, Rejection, Revocation, Rotation, Update
from token_service.redis.records import new_record

__all__ = ["HANDLERS", "Context", "handle"]


@dataclass(frozen=True, slots=True)
class Context:
    """What handlers need besides the command: configuration and the clock."""

    token_prefix: str
    resources: frozenset[str]
    now: datetime


def generate(command: GenerateToken, issuer: Issuer, context: Context) -> NewToken | Rejection:
    """Mint a token; its secret leaves only in the reply."""
    unknown = sorted({resource_of(s) for s in command.scopes} - context.resources)
    if unknown:
        names = ", ".join(f"'{name}'" for name in unknown)
        known = ", ".join(sorted(context.resources))
        return Rejection(
            ErrorCode.INVALID,
            "a scope names a resource that does not exist",
            {"scopes": f"unknown resource {names}; known: {known}"},
        )
    if command.expires_at is not None and command.expires_at <= context.now:
        return Rejection(
            ErrorCode.INVALID, "the expiry has passed", {"expires_at": "must be in the future"}
        )
    token_id = str(ULID.from_datetime(context.now))
    secret = mint(context.token_prefix)
    scopes = list(command.scopes)
    event = TokenCreated(
        token_id=token_id,
        actor=command.actor,
        command_id=command.command_id,
        name=command.name,
        description=command.description,
        scopes=scopes,
        expires_at=command.expires_at,
        occurred_at=context.now,
        allowed_cidrs=command.allowed_cidrs or None,
    )
    record = new_record(
        token_id=token_id,
        name=command.name,
        description=command.description,
        scopes=scopes,
        created_at=context.now,
        created_by=command.actor,
        expires_at=command.expires_at,
        hint=hint(secret),
        allowed_cidrs=command.allowed_cidrs,
    )
    return NewToken(
        issuer=issuer,
        token_id=token_id,
        name=command.name,
        record=record,
        digest=secret_digest(secret),
        scopes=record["scopes"],
        created=context.now,
        expires=command.expires_at,
        event=event.to_json(),
        secret=secret,
        allowed=record.get("allowed_cidrs", ""),
    )


def revoke(command: RevokeToken, issuer: Issuer, context: Context) -> Revocation:
    """Delete every live secret of a token and mark it revoked."""
    event = TokenRevoked(
        token_id=command.token_id,
        actor=command.actor,
        command_id=command.command_id,
        reason=command.reason,
        occurred_at=context.now,
    )
    return Revocation(issuer, command.token_id, context.now, event.to_json())


def rotate(command: RotateToken, issuer: Issuer, context: Context) -> Rotation:
    """Issue a new secret; the old one keeps working until the grace period ends."""
    grace_end = context.now + timedelta(seconds=command.grace_seconds)
    secret = mint(context.token_prefix)
    event = TokenRotated(
        token_id=command.token_id,
        actor=command.actor,
        command_id=command.command_id,
        previous_valid_until=grace_end,
        occurred_at=context.now,
    )
    return Rotation(
        issuer=issuer,
        token_id=command.token_id,
        at=context.now,
        grace_end=grace_end,
        digest=secret_digest(secret),
        hint=hint(secret),
        event=event.to_json(),
        secret=secret,
    )


def update(command: UpdateToken, issuer: Issuer, context: Context) -> Update:
    """Change the description or the allowlist; the store adds the old values to the event."""
    event = TokenUpdated(
        token_id=command.token_id,
        actor=command.actor,
        command_id=command.command_id,
        occurred_at=context.now,
    )
    allowed = None if command.allowed_cidrs is None else " ".join(command.allowed_cidrs)
    return Update(
        issuer=issuer,
        token_id=command.token_id,
        at=context.now,
        # Without `changes`, which closes the object: the store's step appends them.
        event=event.model_dump_json(exclude={"changes"}).encode(),
        description=command.description,
        allowed=allowed,
    )


HANDLERS: dict[type[CommandBase], Callable[[Any, Issuer, Context], Plan | Rejection]] = {
    GenerateToken: generate,
    RevokeToken: revoke,
    RotateToken: rotate,
    UpdateToken: update,
}


def handle(command: CommandBase, issuer: Issuer, context: Context) -> Plan | Rejection:
    """Dispatch a validated command, sent by ``issuer``, to its handler."""
    return HANDLERS[type(command)](command, issuer, context)
