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

    {p}:token:<id>             hash    the token record behind ``TokenView``
    {p}:token:<id>:secrets     zset    sha256 of each live secret -> valid-until ms (+inf)
    {p}:name:<name>            string  id of the active token holding the name, the name
                                       in ASCII lowercase: names are unique whatever the case
    {p}:digest:<sha256>        string  id of the token a secret belonged to, kept for good
                                       (so a leaked, already revoked token is still named)
    {p}:index                  zset    token ids by creation time (ms)
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
    def index(self) -> str:
        """All token ids, by creation time."""
        return f"{self.prefix}:index"

    @property
    def expiries(self) -> str:
        """Token ids that expire, by expiry time."""
        return f"{self.prefix}:expiries"

    @property
    def secret_prefix(self) -> str:
        """What a secret key is before its digest."""
        return f"{self.prefix}:secret:"

    @property
    def name_prefix(self) -> str:
        """What a name key is before the name."""
        return f"{self.prefix}:name:"

    def secret(self, digest: str) -> str:
        """The gateway lookup hash for one secret."""
        return f"{self.secret_prefix}{digest}"

    def digest(self, digest: str) -> str:
        """Which token a secret (by its hash) was issued for, long after it stopped working."""
        return f"{self.prefix}:digest:{digest}"

    def token(self, token_id: str) -> str:
        """One token's record."""
        return f"{self.prefix}:token:{token_id}"

    def token_secrets(self, token_id: str) -> str:
        """The live secrets of one token."""
        return f"{self.prefix}:token:{token_id}:secrets"

    def name(self, name: str) -> str:
        """Which active token holds a name, in any case: ``CaseName`` and ``casename`` share it."""
        # ASCII only, as Lua's string.lower does where the functions derive this key.
        return f"{self.name_prefix}{name.translate(_ASCII_LOWER)}"

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
