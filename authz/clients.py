"""Whose request is it: the client's address, as the proxy in front vouches for it.

The endpoint is only ever called by the proxy (nginx ``auth_request``, Traefik
ForwardAuth, Envoy ext_authz), so the peer address is the proxy's, never the client's.
The client's address comes in a header the proxy sets (``AUTHZ_CLIENT_IP_HEADER``):

- ``X-Real-IP`` set with ``proxy_set_header X-Real-IP $remote_addr`` replaces whatever
  the client sent: the value is the proxy's own account;
- ``X-Forwarded-For`` is a list that each proxy *appends* to: the entries on the left
  are whatever the client wrote. Only the entry the trusted proxy added can be believed:
  the last one, or with ``AUTHZ_CLIENT_IP_HOPS=n`` the n-th from the right when n
  trusted proxies each append one.

The same rule (count from the right) applies to any header, so that a client's own copy
of a header the proxy appends to, or sends beside, is never read. Without the setting no
address is known, and a token with an allowlist is refused (the check fails closed).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

__all__ = ["ClientAddress"]


class ClientAddress:
    """Reads the client's address from the one header a trusted proxy sets."""

    def __init__(self, header: str | None, hops: int = 1) -> None:
        if hops < 1:
            raise ValueError("hops counts trusted proxies: at least 1")
        self.header = header.lower() if header else None
        self.hops = hops

    def of(self, headers: Mapping[str, str]) -> str | None:
        """The address, normalised; ``None`` when not configured, missing or not an IP."""
        if self.header is None:
            return None
        value = headers.get(self.header)
        if value is None:
            return None
        # Repeated header lines arrive joined with ", " (as HTTP combines them).
        entries = [entry.strip() for entry in value.split(",")]
        if len(entries) < self.hops:
            return None
        entry = entries[-self.hops]
        if entry.startswith("[") and "]" in entry:  # "[2001:db8::1]:443", as some proxies write
            entry = entry[1 : entry.index("]")]
        try:
            return str(ipaddress.ip_address(entry))
        except ValueError:
            return None
