"""Leaked secrets: tokens pasted into stream entries, found, refused, deleted and scrubbed.

A plaintext token must never stay in Redis. An entry that holds one (anywhere, JSON
escapes and FastStream envelopes included: :mod:`.scan`) is refused and deleted; when the
token was really issued (:mod:`.issued`), Redis is asked to rewrite its append-only file
so that the token leaves the disk too (:mod:`.aof`).
"""

from token_service.leaks.aof import AofScrubber
from token_service.leaks.issued import any_issued, candidates, rewrite_wanted
from token_service.leaks.scan import secrets_in

__all__ = ["AofScrubber", "any_issued", "candidates", "rewrite_wanted", "secrets_in"]
