"""The token store: carries out the handlers' plans in Redis, one atomic function each.

This module is the one place that packs a plan into the KEYS and ARGV of its Redis
function; each ``lua/<name>.lua`` file has the same layout written at its top. Command
functions start with ``lua/_guard.lua`` (the administrator check and idempotency). A
whole batch goes to Redis in one pipeline of FCALLs.

    function   KEYS                                              ARGV after the guard's 4
    (guard)    command (scoped per publisher and actor)          actor, admins set or '',
                                                                 ttl ms, body digest
    generate   command, name bucket, token, secret, ids,        token id, now ms, expiry ms
               expiries, events, issued bucket                   or '', scopes, digest,
                                                                 TokenCreated, name field,
                                                                 issued field, allowlist or
                                                                 '', record pairs
    revoke     command, token, token grace, expiries, events    token id, now, TokenRevoked,
                                                                 secret prefix, names prefix,
                                                                 now ms
    rotate     command, token, token grace, new secret,         token id, now ms, now, grace
               events, new issued bucket                         end ms, digest, hint,
                                                                 TokenRotated, secret prefix,
                                                                 issued field
    update     command, token, token grace, events               token id, now ms, TokenUpdated
                                                                 without changes, secret
                                                                 prefix, '1' or '' and the
                                                                 description, '1' or '' and
                                                                 the allowlist
    reject     command, events                                   (no guard) outcome JSON,
                                                                 CommandRejected, ttl ms,
                                                                 body digest
    expire     expiries, events                                  (no guard) now ms, now,
                                                                 prefix, one event id each
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from ulid import ULID

from contracts import format_timestamp, to_millis
from token_service.keys import Keys
from token_service.plans import Issuer, NewToken, Plan, Rejection, Revocation, Update
from token_service.redis.library import is_missing, load_library
from token_service.redis.outcomes import (
    Outcome,
    Remembered,
    from_reply,
    rejection_record,
    remembered,
)
from token_service.redis.reads import TokenReader
from token_service.redis.replication import WritesSeen

__all__ = ["Call", "TokenStore"]

_DEMOTED_TRIES = 40
"""How often (every quarter second) a WAIT that reached a replica is sent again."""

Call = tuple[str, list[str], list[str | int]]
"""A function's name in the library (without ``tokens_``), its KEYS and its ARGV."""


class TokenStore(TokenReader):
    """Token state in Redis: the command side, and the read API it inherits."""

    def __init__(self, redis: Redis, keys: Keys, command_ttl_ms: int) -> None:
        super().__init__(redis, keys)
        self.command_ttl_ms = command_ttl_ms

    async def load_functions(self) -> None:
        """Load the functions library (again, should Redis have lost it)."""
        await load_library(self.redis)

    def _guard(self, issuer: Issuer) -> tuple[list[str], list[str | int]]:
        # The admins set is named in ARGV, not KEYS: the function only reads it.
        look_up_in = "" if issuer.admin_by_settings else self.keys.admins
        keys = [self.keys.command(issuer.publisher, issuer.actor, issuer.command_id)]
        return keys, [issuer.actor, look_up_in, self.command_ttl_ms, issuer.body]

    def _call(self, plan: Plan) -> Call:
        keys, args = self._guard(plan.issuer)
        k = self.keys
        if isinstance(plan, NewToken):
            expires_ms: str | int = "" if plan.expires is None else to_millis(plan.expires)
            (names, name), (issued, field) = k.name(plan.name), k.issued(plan.digest)
            keys += [names, k.token(plan.token_id), k.secret(plan.digest), k.ids, k.expiries]
            keys += [k.events, issued]
            args += [plan.token_id, to_millis(plan.created), expires_ms, plan.scopes, plan.digest]
            args += [plan.event.decode(), name, field, plan.allowed]
            for pair in plan.record.items():
                args.extend(pair)
            return "generate", keys, args
        if isinstance(plan, Revocation):
            keys += [k.token(plan.token_id), k.token_grace(plan.token_id), k.expiries, k.events]
            args += [plan.token_id, format_timestamp(plan.at), plan.event.decode()]
            args += [k.secret_prefix, k.names_prefix, to_millis(plan.at)]
            return "revoke", keys, args
        if isinstance(plan, Update):
            return self._update(plan, keys, args)
        issued, field = k.issued(plan.digest)
        keys += [k.token(plan.token_id), k.token_grace(plan.token_id), k.secret(plan.digest)]
        keys += [k.events, issued]
        args += [plan.token_id, to_millis(plan.at), format_timestamp(plan.at)]
        args += [to_millis(plan.grace_end), plan.digest, plan.hint, plan.event.decode()]
        args += [k.secret_prefix, field]
        return "rotate", keys, args

    def _update(self, plan: Update, keys: list[str], args: list[str | int]) -> Call:
        k = self.keys
        keys += [k.token(plan.token_id), k.token_grace(plan.token_id), k.events]
        args += [plan.token_id, to_millis(plan.at), plan.event.decode(), k.secret_prefix]
        for value in (plan.description, plan.allowed):
            args += ["" if value is None else "1", value or ""]
        return "update", keys, args

    async def _run(self, calls: Sequence[Call], seen: WritesSeen | None = None) -> list[object]:
        replies: list[object] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            # Only calls Redis did not run (the library lost in a restart or a flush) go
            # again: the others did run, and running them twice would answer "duplicate".
            if attempt:
                await self.load_functions()
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    function, keys, args = calls[i]
                    pipe.fcall(f"tokens_{function}", len(keys), *keys, *args)
                if seen is not None:  # in the same round trip: the server that ran them
                    pipe.info("replication")
                results = await pipe.execute(raise_on_error=False)
                if seen is not None:
                    seen.saw(results.pop())
                for i, reply in zip(todo, results, strict=True):
                    replies[i] = reply
            todo = [i for i in todo if is_missing(replies[i])]
            if not todo:
                break
        return replies

    async def apply(self, plans: Sequence[Plan], seen: WritesSeen | None = None) -> list[Outcome]:
        """Carry out each plan; one round trip for the whole batch.

        With ``seen``, the server that ran them is noted there (see :meth:`replicate`).
        """
        if not plans:
            return []
        replies = await self._run([self._call(p) for p in plans], seen)
        return [from_reply(reply) for reply in replies]

    async def record_rejections(
        self,
        rejections: Sequence[tuple[Issuer, Rejection, bytes]],
        seen: WritesSeen | None = None,
    ) -> list[Outcome]:
        """Remember each ``(issuer, rejection, CommandRejected)`` once, with its event."""
        if not rejections:
            return []
        calls: list[Call] = []
        for issuer, rejection, event in rejections:
            key = self.keys.command(issuer.publisher, issuer.actor, issuer.command_id)
            record = rejection_record(rejection, issuer.body).decode()
            args: list[str | int] = [record, event.decode(), self.command_ttl_ms, issuer.body]
            calls.append(("reject", [key, self.keys.events], args))
        return [from_reply(reply) for reply in await self._run(calls, seen)]

    async def replicate(self, replicas: int, timeout_ms: int, seen: WritesSeen) -> int:
        """Wait until ``replicas`` replicas have every write made so far; how many have.

        WAIT counts what the replicas acknowledged of the writes of its own connection,
        which may not be the one that wrote. So it follows a write of its own (a PUBLISH
        to a channel nobody hears, propagated like any write), which comes after every
        write already answered, from whatever connection or process. It must also run
        on the server those writes went to: :class:`PrimaryChanged` if not (``seen``).
        """
        for _ in range(_DEMOTED_TRIES):
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.info("replication")
                    pipe.publish(f"{self.keys.replies_prefix}replication-barrier", "")
                    pipe.execute_command("WAIT", replicas, timeout_ms)
                    info, _, confirmed = await pipe.execute()
                seen.saw(info)
                seen.check()
                return int(confirmed)
            except ResponseError as exc:
                # A sentinel that has not yet heard of a failover named the old primary,
                # back as a replica: PUBLISH works there, WAIT does not. Ask again.
                if "replica" not in str(exc):
                    raise
                await self.redis.connection_pool.disconnect()
                await asyncio.sleep(0.25)
        raise ConnectionError("connected to a replica, not the primary, again and again")

    async def expire_due(self, now: datetime, limit: int = 100) -> int:
        """Mark up to ``limit`` tokens past their expiry as expired; how many were."""
        keys = [self.keys.expiries, self.keys.events]
        args: list[str | int] = [to_millis(now), format_timestamp(now), self.keys.prefix]
        args += [str(ULID.from_datetime(now)) for _ in range(limit)]
        (reply,) = await self._run([("expire", keys, args)])
        if isinstance(reply, Exception):
            raise reply
        return int(cast(int, reply))

    async def outcome_of(self, issuer: Issuer) -> Remembered | None:
        """The remembered first outcome of a command, if it was handled."""
        stored = await self.redis.get(
            self.keys.command(issuer.publisher, issuer.actor, issuer.command_id)
        )
        return None if stored is None else remembered(stored)
