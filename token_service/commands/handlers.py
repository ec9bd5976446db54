"""Command handlers: plain functions from a command to the mutation that applies it.

A handler checks what it can without Redis and returns either a :class:`Rejection`
or a :class:`Mutation`: the Redis function, keys and arguments that apply the command in
one atomic step. Checks that need state (admins, names, status) run inside that function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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
    format_timestamp,
    to_millis,
)
from contracts.scopes import resource_of
from contracts.token_format import hint, mint, secret_digest
from token_service.keys import Keys
from token_service.redis.records import new_record

__all__ = ["HANDLERS", "Context", "Mutation", "Rejection", "handle"]


@dataclass(frozen=True, slots=True)
class Context:
    """What handlers need besides the command: configuration and the clock."""

    keys: Keys
    token_prefix: str
    resources: frozenset[str]
    admins: frozenset[str]
    command_ttl_ms: int
    now: datetime


@dataclass(frozen=True, slots=True)
class Rejection:
    """A command refused, with a code, a message and the fields at fault."""

    code: ErrorCode
    message: str
    fields: dict[str, str] | None = None
    token_id: str | None = None


@dataclass(frozen=True, slots=True)
class Mutation:
    """One atomic function call that applies a command, remembers it and writes its event."""

    function: str
    """Which of the library's command functions (``generate``, ``revoke``, ``rotate``)."""
    keys: list[str]
    args: list[str | int]
    token_id: str
    secret: str | None = field(default=None, repr=False)


def _guard(command: CommandBase, context: Context) -> tuple[list[str], list[str | int]]:
    keys = [context.keys.command(command.command_id)]
    # Named in ARGV, not KEYS: the function only reads the set (see lua/_guard.lua).
    look_up_in = "" if command.actor in context.admins else context.keys.admins
    return keys, [command.actor, look_up_in, context.command_ttl_ms]


def generate(command: GenerateToken, context: Context) -> Mutation | Rejection:
    """Mint a token; its secret leaves only in the reply."""
    unknown = sorted({resource_of(s) for s in command.scopes} - context.resources)
    if unknown:
        names = ", ".join(f"'{name}'" for name in unknown)
        return Rejection(
            ErrorCode.INVALID,
            "a scope names a resource that does not exist",
            {"scopes": f"unknown resource {names}; known: {', '.join(sorted(context.resources))}"},
        )
    if command.expires_at is not None and command.expires_at <= context.now:
        return Rejection(
            ErrorCode.INVALID, "the expiry has passed", {"expires_at": "must be in the future"}
        )
    token_id = str(ULID.from_datetime(context.now))
    secret = mint(context.token_prefix)
    digest = secret_digest(secret)
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
    )
    keys, args = _guard(command, context)
    k = context.keys
    keys += [
        k.name(command.name),
        k.token(token_id),
        k.token_secrets(token_id),
        k.secret(digest),
        k.index,
        k.expiries,
        k.events,
        k.digest(digest),
    ]
    expires_ms = "" if command.expires_at is None else to_millis(command.expires_at)
    args += [token_id, to_millis(context.now), expires_ms, record["scopes"], digest]
    args.append(event.to_json().decode())
    for item in record.items():
        args.extend(item)
    return Mutation("generate", keys, args, token_id, secret)


def revoke(command: RevokeToken, context: Context) -> Mutation:
    """Delete every live secret of a token and mark it revoked."""
    event = TokenRevoked(
        token_id=command.token_id,
        actor=command.actor,
        command_id=command.command_id,
        reason=command.reason,
        occurred_at=context.now,
    )
    keys, args = _guard(command, context)
    k = context.keys
    keys += [k.token(command.token_id), k.token_secrets(command.token_id), k.expiries, k.events]
    args += [
        command.token_id,
        format_timestamp(context.now),
        event.to_json().decode(),
        k.secret_prefix,
        k.name_prefix,
        to_millis(context.now),
    ]
    return Mutation("revoke", keys, args, command.token_id)


def rotate(command: RotateToken, context: Context) -> Mutation:
    """Issue a new secret; the old one keeps working until the grace period ends."""
    grace_end = context.now + timedelta(seconds=command.grace_seconds)
    secret = mint(context.token_prefix)
    digest = secret_digest(secret)
    event = TokenRotated(
        token_id=command.token_id,
        actor=command.actor,
        command_id=command.command_id,
        previous_valid_until=grace_end,
        occurred_at=context.now,
    )
    keys, args = _guard(command, context)
    k = context.keys
    keys += [
        k.token(command.token_id),
        k.token_secrets(command.token_id),
        k.secret(digest),
        k.events,
        k.digest(digest),
    ]
    args += [
        command.token_id,
        to_millis(context.now),
        format_timestamp(context.now),
        to_millis(grace_end),
        digest,
        hint(secret),
        event.to_json().decode(),
        k.secret_prefix,
    ]
    return Mutation("rotate", keys, args, command.token_id, secret)


HANDLERS: dict[type[CommandBase], Callable[[Any, Context], Mutation | Rejection]] = {
    GenerateToken: generate,
    RevokeToken: revoke,
    RotateToken: rotate,
}


def handle(command: CommandBase, context: Context) -> Mutation | Rejection:
    """Dispatch a validated command to its handler."""
    return HANDLERS[type(command)](command, context)
