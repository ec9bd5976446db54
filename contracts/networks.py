"""Client networks a token may be used from: its allowlist of CIDR blocks (version 2.x).

An allowlist is a list of IPv4 and IPv6 networks written as CIDR blocks. Each is read
with the standard :mod:`ipaddress` module and kept in its normal form (``10.0.0.7`` is
``10.0.0.7/32``, ``2001:DB8::/32`` is ``2001:db8::/32``); a block with host bits set is
refused rather than widened, since ``10.0.0.7/24`` is more likely a mistake than a wish
for the whole ``10.0.0.0/24``. No allowlist (absent or empty) means any address.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_CIDRS",
    "AllowedCidrs",
    "Cidr",
    "address_allowed",
    "normalise_cidr",
    "parse_allowlist",
]

MAX_CIDRS = 64
"""At most this many blocks in one token's allowlist."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalise_cidr(text: str) -> str:
    """The normal form of one CIDR block; raises ``ValueError`` saying what is wrong."""
    if not text or text != text.strip():
        raise ValueError("is not an IP network: no spaces, nothing empty")
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError("is not an IPv4 or IPv6 network in CIDR notation") from exc
        raise ValueError(f"has host bits set; the network is {loose}") from exc


def _cidr(text: str) -> str:
    try:
        return normalise_cidr(text)
    except ValueError as exc:
        # The value itself is not echoed: whatever was pasted here stays out of replies.
        raise PydanticCustomError("cidr", "{why}", {"why": str(exc)}) from None


def _distinct(blocks: list[str]) -> list[str]:
    if len(set(blocks)) != len(blocks):
        raise ValueError("networks must be distinct (after normalisation)")
    return blocks


Cidr = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_cidr)]
"""One IPv4 or IPv6 network, normalised."""

AllowedCidrs = Annotated[list[Cidr], Field(max_length=MAX_CIDRS), AfterValidator(_distinct)]
"""A token's allowlist: at most :data:`MAX_CIDRS` distinct networks."""


@functools.lru_cache(maxsize=1024)
def parse_allowlist(stored: str) -> tuple[Network, ...]:
    """The networks of an allowlist as stored (space-separated, normal form)."""
    networks = []
    for block in stored.split():
        try:
            networks.append(ipaddress.ip_network(block, strict=False))
        except ValueError:  # a stored value no validator wrote: it allows nothing
            continue
    return tuple(networks)


@functools.lru_cache(maxsize=8192)
def address_allowed(stored: str, address: str | None) -> bool:
    """Whether ``address`` (an IP address as text) lies in the stored allowlist.

    An empty allowlist allows everyone; an allowlist with no address to test (or one that
    is not an IP address) allows no one: the check fails closed. An IPv4 address written
    as IPv6 (``::ffff:10.0.0.7``) counts as the IPv4 address.
    """
    if not stored.strip():
        return True
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in parse_allowlist(stored))
