"""What the inbox believes about a request's client: its address and whether it used TLS.

The peer address is the truth unless the peer is a proxy listed in relay.trusted_proxies;
then the hop that proxy added to X-Forwarded-For (and its X-Forwarded-Proto) is believed,
and the walk goes on leftwards only while each hop is itself a trusted proxy. A header
from anyone else is ignored: a client could otherwise pick its own throttle bucket, or
claim https to make a cookie Secure or a redirect absolute on a host it names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Proxies:
    """The trusted proxies, and the client address and scheme they vouch for."""

    def __init__(self, trusted: Iterable[str]) -> None:
        """Parse relay.trusted_proxies (already checked to be IP addresses by the config)."""
        self._trusted = frozenset(a for a in map(_address, trusted) if a is not None)

    def trusts(self, address: Address | None) -> bool:
        """Whether `address` is one of the trusted proxies."""
        return address is not None and address in self._trusted

    def client(self, environ: Mapping[str, Any]) -> str:
        """The client's address: the peer's, or the hop its trusted proxies recorded."""
        hop = _address(environ.get("REMOTE_ADDR"))
        if hop is None:
            return "unknown"
        forwarded = str(environ.get("HTTP_X_FORWARDED_FOR", ""))
        for entry in reversed(forwarded.split(",") if forwarded else []):
            if not self.trusts(hop):
                break
            added = _address(entry)
            if added is None:  # a trusted proxy wrote something that is no address
                break
            hop = added
        return str(hop)

    def https(self, environ: Mapping[str, Any]) -> bool:
        """Whether the request came over TLS: to us, or to a trusted proxy that says so."""
        if environ.get("wsgi.url_scheme") == "https":
            return True
        if not self.trusts(_address(environ.get("REMOTE_ADDR"))):
            return False
        proto = str(environ.get("HTTP_X_FORWARDED_PROTO", "")).rpartition(",")[2]
        return proto.strip().lower() == "https"


def _address(text: Any) -> Address | None:
    """An IP address (an IPv4-mapped IPv6 one as IPv4), or None for anything else."""
    try:
        address = ipaddress.ip_address(str(text).strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
