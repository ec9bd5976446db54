"""What a command handler decided, as plain values for the store to carry out.

A handler checks what it can without Redis and returns a plan (:class:`NewToken`,
:class:`Revocation`, :class:`Rotation`, :class:`Update`) or a :class:`Rejection`. The store
(``token_service.redis.store``) is the one place that turns a plan into a Redis
function call; checks that need state (administrators, names, status) run there,
inside that one atomic call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

from contracts import ErrorCode

__all__ = [
    "Issuer",
    "NewToken",
    "Plan",
    "Rejection",
    "Revocation",
    "Rotation",
    "Update",
    "minted_secret",
]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A command refused, with a code, a message and the fields at fault."""

    code: ErrorCode
    message: str
    fields: dict[str, str] | None = None
    token_id: str | None = None


@dataclass(frozen=True, slots=True)
class Issuer:
    """Who asks, as the atomic step checks it before anything else."""

    publisher: str
    """Whose stream the command came from (``shared`` for version 1's stream)."""
    actor: str
    command_id: str
    admin_by_settings: bool
    """Listed in ``TOKENS_ADMINS``; otherwise the admins set is looked up."""
    body: str
    """A digest of the command's fields but ``reply_to``: one id, one body."""


@dataclass(frozen=True, slots=True)
class NewToken:
    """Store a freshly minted token: its record, its secret's lookup hash and its event."""

    issuer: Issuer
    token_id: str
    name: str
    record: dict[str, str]
    digest: str
    scopes: str
    created: datetime
    expires: datetime | None
    event: bytes
    secret: str = field(repr=False)
    allowed: str = ""
    """The allowlist, space-separated, for the secret's lookup hash ('' for none)."""


@dataclass(frozen=True, slots=True)
class Revocation:
    """Delete every live secret of a token and mark it revoked."""

    issuer: Issuer
    token_id: str
    at: datetime
    event: bytes


@dataclass(frozen=True, slots=True)
class Rotation:
    """Give a token a new secret; the old ones stop at ``grace_end`` (or now)."""

    issuer: Issuer
    token_id: str
    at: datetime
    grace_end: datetime
    digest: str
    hint: str
    event: bytes
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Update:
    """Change a token's description or allowlist, on its record and every live secret.

    ``None`` leaves a field as it is; ``''`` removes it (no description, any address).
    The event is written without ``changes``: the atomic step, which reads the old values,
    adds them.
    """

    issuer: Issuer
    token_id: str
    at: datetime
    event: bytes
    description: str | None
    allowed: str | None


Plan: TypeAlias = NewToken | Revocation | Rotation | Update


def minted_secret(plan: Plan) -> str | None:
    """The secret a plan mints (for its first reply only), if it mints one."""
    return plan.secret if isinstance(plan, NewToken | Rotation) else None
