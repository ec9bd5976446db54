"""What a gateway imports to check tokens and report their use.

This package depends on redis, prometheus_client, ``contracts`` and the key layout only,
and logs through the standard :mod:`logging` module, so the host application decides
where its lines go.
"""

from token_service.gateway.cache import CacheOptions
from token_service.gateway.usage import UsageReporter
from token_service.gateway.verifier import Accepted, Rejected, RejectReason, Verdict, Verifier

__all__ = [
    "Accepted",
    "CacheOptions",
    "RejectReason",
    "Rejected",
    "UsageReporter",
    "Verdict",
    "Verifier",
]
