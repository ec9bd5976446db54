"""The one place that knows the Redis key layout.

Contract keys (other programs rely on them; see ``shared/CONTRACT.md``)::

    {p}:commands:<publisher>   stream  one publisher's commands (v2), group ``token-service``
    {p}:commands               stream  commands in (v1, shared; read only when trusted)
    {p}:events                 stream  lifecycle events out, plus ``CommandRejected``
    {p}:usage                  stream  ``TokenUsed`` from gateways
    {p}:dead-letter            stream  entries that could not be handled, with the reason
    {p}:secret:<sha256>        hash    token_id, scopes (space-separated), expires_at (ms)
    {p}:admins                 set     actors allowed to send commands

Private keys (may change without notice)::

    {p}:token:<id>             hash    the token record behind ``TokenView``; since layout 2
                                       without its id (the key's) or creation time (the
                                       id's ULID time); while active, ``secret``: the
                                       sha256 of its current secret
    {p}:token:<id>:grace       zset    sha256 of each secret in a rotation's grace period ->
                                       valid-until ms; expires with the last of them
    {p}:names:<bucket>         hash    name in ASCII lowercase -> id of the active token
                                       holding it (names are unique whatever the case);
                                       bucket: the first 3 hex digits of the name's SHA-1.
                                       A holder past its expiry holds it no longer
    {p}:issued:<bucket>        hash    hex digits 4 to 32 of a secret's sha256 -> id of the
                                       token it was issued for, kept for good (so a leaked,
                                       already revoked token is still named); bucket: the
                                       first 3 digits
    {p}:ids                    list    token ids, oldest first (creation order)
    {p}:expiries               zset    token ids by expiry time (ms)
    {p}:command:<publisher>:<actor digest>:<command_id>
                               string  JSON outcome of a handled command, kept for a TTL
    {p}:token:<id>:daily       hash    day (YYYY-MM-DD) -> uses that day   (audit worker)
    (the token record gains last_used_ms, written only by the audit worker, only forward)
    {p}:token:<id>:audit       list    the token's lifecycle events, JSON  (audit worker)
    {p}:token:<id>:refusals    list    the newest CommandRejected naming it, capped (worker)
    {p}:seen:<window>          set     event ids folded, by the window of their arrival:
                                       worker's clock ms // (AUDIT_DEDUPE_HOURS h)
                                       (lifecycle events, and reports without a sequence)
    {p}:reporter:<r>:high      string  the highest sequence of usage reporter <r> folded
    {p}:reporter:<r>:seen      string  bits: which of its last 65,536 sequences were folded
    {p}:console:session:<sha256>  string  a console session: the signed-in identity (JSON),
                                       never a secret; expires when idle (console)
    {p}:console:link:<sha256>  string  a one-time sign-in link's identity, minutes (console)
    {p}:console:login:<sha256> string  an OpenID Connect sign-in under way: state, PKCE
                                       verifier and nonce, 10 minutes (console)
    {p}:notify:delivered:<webhook>:<entry id>
                               string  a webhook got this event (JSON: attempts, status,
                                       time), kept for NOTIFY_DELIVERED_DAYS (notifier)
    {p}:notify:attempts:<webhook>:<entry id>
                               string  attempts so far, until delivered (notifier)
    {p}:notify:deliveries      stream  every delivery attempt: webhook, event, attempt,
                                       status, time; capped (notifier)
    {p}:layout                 string  ``2`` once the layout before it (``token_service.
                                       redis.migration``) was moved to this one

Buckets keep many small entries in one hash that Redis stores compactly (a listpack, up
to ``hash-max-listpack-entries``, 128 by default, per bucket: 4,096 buckets hold about
500,000 names or issued secrets so). Past that a bucket still works, in a larger encoding.
The Lua in ``redis/lua/_layout.lua`` derives the same buckets.

Pub/sub channels::

    {p}:replies:<publisher>:<random>   one publisher's replies (secrets included); the
                                       service publishes nowhere else

``{p}`` is ``TOKENS_KEY_PREFIX``. The Redis functions derive secret and name keys from
stored state, so they need a single Redis (or one slot), not a spread-out Cluster.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass

__all__ = ["Keys"]

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_BUCKET_HEX = 3  # 4,096 buckets; lua/_layout.lua says the same
_ISSUED_HEX = 32  # 128 bits of a secret's sha256 name the token it was issued for


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix."""

    prefix: str = "tokens"

    @property
    def commands(self) -> str:
        """Stream of commands."""
        return f"{self.prefix}:commands"

    @property
    def events(self) -> str:
        """Stream of lifecycle events."""
        return f"{self.prefix}:events"

    @property
    def usage(self) -> str:
        """Stream of ``TokenUsed`` reports."""
        return f"{self.prefix}:usage"

    @property
    def dead_letter(self) -> str:
        """Stream of entries that could not be handled."""
        return f"{self.prefix}:dead-letter"

    @property
    def admins(self) -> str:
        """Set of administrators."""
        return f"{self.prefix}:admins"

    @property
    def ids(self) -> str:
        """All token ids, oldest first."""
        return f"{self.prefix}:ids"

    @property
    def layout(self) -> str:
        """Which layout the keys are in, once an older one was moved."""
        return f"{self.prefix}:layout"

    @property
    def expiries(self) -> str:
        """Token ids that expire, by expiry time."""
        return f"{self.prefix}:expiries"

    @property
    def secret_prefix(self) -> str:
        """What a secret key is before its digest."""
        return f"{self.prefix}:secret:"

    @property
    def names_prefix(self) -> str:
        """What a bucket of names is before its bucket."""
        return f"{self.prefix}:names:"

    @property
    def issued_prefix(self) -> str:
        """What a bucket of issued secrets is before its bucket."""
        return f"{self.prefix}:issued:"

    def secret(self, digest: str) -> str:
        """The gateway lookup hash for one secret."""
        return f"{self.secret_prefix}{digest}"

    def issued(self, digest: str) -> tuple[str, str]:
        """Where it is kept which token a secret (by its hash) was issued for, long after it
        stopped working: ``(bucket, field)``. 128 bits of the hash name it beyond doubt."""
        return f"{self.issued_prefix}{digest[:_BUCKET_HEX]}", digest[_BUCKET_HEX:_ISSUED_HEX]

    def token(self, token_id: str) -> str:
        """One token's record."""
        return f"{self.prefix}:token:{token_id}"

    def token_grace(self, token_id: str) -> str:
        """The secrets of one token still in a rotation's grace period."""
        return f"{self.prefix}:token:{token_id}:grace"

    def name(self, name: str) -> tuple[str, str]:
        """Where it is kept which active token holds a name, in any case: ``(bucket, field)``;
        ``CaseName`` and ``casename`` share it."""
        # ASCII only, as Lua's string.lower does where the functions derive this bucket.
        field = name.translate(_ASCII_LOWER)
        bucket = hashlib.sha1(field.encode(), usedforsecurity=False).hexdigest()[:_BUCKET_HEX]
        return f"{self.names_prefix}{bucket}", field

    def token_daily(self, token_id: str) -> str:
        """Uses of one token per day."""
        return f"{self.prefix}:token:{token_id}:daily"

    def token_refusals(self, token_id: str) -> str:
        """The newest refused commands that named one token (capped)."""
        return f"{self.prefix}:token:{token_id}:refusals"

    def token_audit(self, token_id: str) -> str:
        """The lifecycle events of one token."""
        return f"{self.prefix}:token:{token_id}:audit"

    def seen(self, window: int) -> str:
        """Event ids the audit worker folded as they arrived in one dedupe window (the
        folds derive it in Lua)."""
        return f"{self.prefix}:seen:{window}"

    @property
    def console_prefix(self) -> str:
        """What every key of the web console starts with."""
        return f"{self.prefix}:console:"

    def console_session(self, digest: str) -> str:
        """One console session, by the SHA-256 of the id in its cookie."""
        return f"{self.console_prefix}session:{digest}"

    def console_link(self, digest: str) -> str:
        """One unused sign-in link, by the SHA-256 of its code."""
        return f"{self.console_prefix}link:{digest}"

    def console_login(self, digest: str) -> str:
        """One OpenID Connect sign-in under way, by the SHA-256 of its flow cookie."""
        return f"{self.console_prefix}login:{digest}"

    @property
    def notify_prefix(self) -> str:
        """What every key of the notifier starts with."""
        return f"{self.prefix}:notify:"

    @property
    def notify_deliveries(self) -> str:
        """Stream of every webhook delivery attempt."""
        return f"{self.notify_prefix}deliveries"

    def notify_delivered(self, webhook: str, entry_id: str) -> str:
        """Set once ``webhook`` has the event of ``entry_id``: it is never sent there again."""
        return f"{self.notify_prefix}delivered:{webhook}:{entry_id}"

    def notify_attempts(self, webhook: str, entry_id: str) -> str:
        """How many times the event of ``entry_id`` was sent to ``webhook`` so far."""
        return f"{self.notify_prefix}attempts:{webhook}:{entry_id}"

    @property
    def replies_prefix(self) -> str:
        """What every reply channel starts with."""
        return f"{self.prefix}:replies:"

    def replies(self, publisher: str) -> str:
        """What the reply channels of one publisher start with."""
        return f"{self.replies_prefix}{publisher}:"

    def reply_channel(self, publisher: str, nonce: str) -> str:
        """One reply channel of a publisher; ``nonce`` carries at least 128 random bits."""
        return f"{self.replies(publisher)}{nonce}"

    def publisher_commands(self, publisher: str) -> str:
        """The command stream only ``publisher`` may write to."""
        return f"{self.commands}:{publisher}"

    def command(self, publisher: str, actor: str, command_id: str) -> str:
        """The remembered outcome of one command: ids are scoped per publisher and actor."""
        actor_digest = hashlib.sha256(actor.encode()).hexdigest()[:24]
        return f"{self.prefix}:command:{publisher}:{actor_digest}:{command_id}"
