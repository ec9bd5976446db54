"""The load of a failover run: publishers sending mixed commands, gateways checking tokens.

Publishers send Generate, Rotate and Revoke through ``TokenClient`` and, when no reply
comes in time or Redis refuses the write, send the same command (same ``command_id``)
again, as the contract allows. Gateways check tokens all along, one ``Verifier`` reading
from the primary and one from a replica, and every check is written down with its time.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from contracts import CommandReply, GenerateToken, RevokeToken, RotateToken
from token_service.client import ReplyTimeout, TokenClient
from token_service.gateway import Verifier

__all__ = ["ADMIN", "Check", "Checkers", "Ledger", "Sent", "publish"]

ADMIN = "failover-admin"
SCOPE = "entities:read"
Command = GenerateToken | RevokeToken | RotateToken


@dataclass
class Sent:
    """One command, from its first sending to its reply."""

    command: Command
    first_sent: float
    sends: int = 0
    reply: CommandReply | None = None
    replied_at: float | None = None


@dataclass
class Ledger:
    """What the publishers know: commands and their replies, and the live secrets."""

    sent: list[Sent] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    """token id -> its current secret, for tokens generated and not revoked."""
    revoked: dict[str, tuple[str, float]] = field(default_factory=dict)
    """token id -> (its last secret, when the revoke's ok reply came)."""
    acked: int = 0
    kill_at: int | None = None
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once ``acked`` reaches ``kill_at``."""

    def acknowledged(self) -> list[Sent]:
        """The commands that got an ``ok`` reply."""
        return [s for s in self.sent if s.reply is not None and s.reply.ok]


@dataclass(frozen=True, slots=True)
class Check:
    """One gateway check: which gateway, when it began, which token, what it answered."""

    gateway: str
    started: float
    token_id: str
    revoked_before: bool
    """Whether the token's revoke had been acknowledged when the check began."""
    accepted: bool
    unavailable: bool


async def _send(client: TokenClient, sent: Sent, deadline: float) -> None:
    while time.monotonic() < deadline:
        sent.sends += 1
        try:
            reply = await client.send(sent.command)
        except (ReplyTimeout, RedisError, OSError):
            await asyncio.sleep(0.05)
            continue
        sent.reply, sent.replied_at = reply, time.monotonic()
        return


def _next_command(rng: random.Random, ledger: Ledger, n: int, tag: str) -> Command:
    command_id = f"{tag}-{n}"
    live = sorted(ledger.secrets)
    roll = rng.random()
    if len(live) < 5 or roll < 0.4:
        return GenerateToken(
            command_id=command_id, actor=ADMIN, name=f"{command_id}", scopes=[SCOPE]
        )
    token_id = rng.choice(live)
    ledger.secrets.pop(token_id)  # no other publisher picks it while this one is in flight
    if roll < 0.7:
        return RotateToken(command_id=command_id, actor=ADMIN, token_id=token_id)
    return RevokeToken(command_id=command_id, actor=ADMIN, token_id=token_id)


def _record(ledger: Ledger, sent: Sent, old_secret: str | None) -> None:
    reply, command = sent.reply, sent.command
    if reply is None or not reply.ok or reply.token is None:
        if old_secret is not None and not isinstance(command, GenerateToken):
            ledger.secrets[command.token_id] = old_secret  # not done: usable again
        return
    ledger.acked += 1
    if ledger.kill_at is not None and ledger.acked >= ledger.kill_at:
        ledger.reached.set()
    token_id = reply.token.id
    if isinstance(command, RevokeToken):
        assert old_secret is not None
        assert sent.replied_at is not None
        ledger.revoked[token_id] = (old_secret, sent.replied_at)
    elif reply.secret is not None:
        ledger.secrets[token_id] = reply.secret
    elif old_secret is not None:  # a duplicate reply carries no secret: keep the old one
        ledger.secrets[token_id] = old_secret


async def publish(
    client: TokenClient, ledger: Ledger, rng: random.Random, count: int, tag: str
) -> None:
    """Send ``count`` commands one after the other, each until it is answered."""
    previous: dict[str, str] = {}
    for n in range(count):
        command = _next_command(rng, ledger, n, tag)
        old = None
        if not isinstance(command, GenerateToken):
            old = previous.get(command.token_id)
        sent = Sent(command, time.monotonic())
        ledger.sent.append(sent)
        await _send(client, sent, time.monotonic() + 60)
        _record(ledger, sent, old)
        previous = {**ledger.secrets, **{k: v for k, (v, _) in ledger.revoked.items()}}


@dataclass
class Checkers:
    """Gateways checking the ledger's tokens (live and revoked) until stopped."""

    gateways: dict[str, Verifier]
    ledger: Ledger
    checks: list[Check] = field(default_factory=list)
    running: bool = True

    async def run(self, rng: random.Random, pause_s: float = 0.002) -> None:
        """Each gateway on its own: one check per turn, a revoked token every other turn.

        Each has its own loop, so that one gateway's slow checks (its Redis is gone)
        do not slow the other's.
        """
        await asyncio.gather(
            *(
                self._run_one(name, verifier, random.Random(rng.random()), pause_s)
                for name, verifier in self.gateways.items()
            )
        )

    async def _run_one(
        self, name: str, verifier: Verifier, rng: random.Random, pause_s: float
    ) -> None:
        turn = 0
        while self.running:
            turn += 1
            if turn % 2 and self.ledger.revoked:
                token_id = rng.choice(sorted(self.ledger.revoked))
                secret, revoked_at = self.ledger.revoked[token_id]
            elif self.ledger.secrets:
                token_id = rng.choice(sorted(self.ledger.secrets))
                secret, revoked_at = self.ledger.secrets[token_id], float("inf")
            else:
                await asyncio.sleep(0.01)
                continue
            await self._check(name, verifier, token_id, secret, revoked_at)
            await asyncio.sleep(pause_s)

    async def _check(
        self, name: str, verifier: Verifier, token_id: str, secret: str, revoked_at: float
    ) -> None:
        started = time.monotonic()
        verdict = await verifier.verify(secret, SCOPE)
        unavailable = not verdict.ok and getattr(verdict, "reason", "") == "unavailable"
        check = Check(name, started, token_id, started > revoked_at, verdict.ok, unavailable)
        self.checks.append(check)
