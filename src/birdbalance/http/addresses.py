"""Where a request comes from: the peer, or the client a trusted proxy names."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, MutableMapping
from typing import Any, Final

#: Longest ``X-Forwarded-For`` value looked at.
_MAX_FORWARDED_CHARS: Final = 1024


def trusted_networks(
    specs: Iterable[str],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse ``BIRDBALANCE_TRUSTED_PROXIES`` entries (addresses or CIDR networks)."""
    return tuple(ipaddress.ip_network(spec.strip(), strict=False) for spec in specs if spec.strip())


def _is_trusted(address: str, trusted: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(scope: MutableMapping[str, Any], trusted: tuple[Any, ...]) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the
    right-most address in ``X-Forwarded-For`` that is not itself a trusted proxy."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = None
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            forwarded = value
    if forwarded is None or len(forwarded) > _MAX_FORWARDED_CHARS:
        return peer
    for hop in reversed(forwarded.decode("latin-1").split(",")):
        hop = hop.strip()
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a malformed chain: trust only the peer
        if not _is_trusted(hop, trusted):
            return str(hop)
    return peer
