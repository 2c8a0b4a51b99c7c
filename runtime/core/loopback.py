"""Which Host headers name this machine's loopback (or the address a node listens on).

A browser sends the name from the page's URL: a page whose DNS name was rebound to
127.0.0.1 still says `Host: evil.example`. Accepting only loopback names and literal
addresses keeps such pages out of a server they can reach.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# The wildcard addresses: a listen address of any interface.
WILDCARDS = ("0.0.0.0", "::")


@dataclass(frozen=True)
class HostRule:
    """Loopback names and addresses; with `listen_host`, that address too."""

    listen_host: str | None = None

    def allows(self, header: str | None) -> bool:
        """Whether a Host header value passes (a missing one does not)."""
        parsed = split_host(header) if header is not None else None
        if parsed is None:
            return False
        name, bracketed = parsed
        if is_loopback(name, bracketed=bracketed):
            return True
        return self.listen_host is not None and self._is_listen(name, bracketed=bracketed)

    def _is_listen(self, name: str, *, bracketed: bool) -> bool:
        address = _address(name, bracketed=bracketed)
        if self.listen_host in WILDCARDS:
            return address is not None  # no DNS name can be rebound: only literals pass
        listen = _address(self.listen_host or "", bracketed=":" in (self.listen_host or ""))
        if listen is not None:
            return address == listen
        return _plain_name(name) == _plain_name(self.listen_host or "")


def split_host(header: str) -> tuple[str, bool] | None:
    """(host, whether it was in brackets) of a Host value `host[:port]`; None if malformed."""
    if header.startswith("["):
        end = header.find("]")
        name, rest, bracketed = header[1:end], header[end + 1 :], True
        if end < 0:
            return None
    else:
        name, sep, port = header.partition(":")
        rest, bracketed = (":" + port if sep else ""), False
    port = rest[1:]
    if rest and (rest[0] != ":" or not ((port.isascii() and port.isdigit()) or port == "")):
        return None
    if not name or len(port) > 5:
        return None
    return name, bracketed


def is_loopback(name: str, *, bracketed: bool = False) -> bool:
    """localhost (any case, one trailing dot), 127.0.0.0/8, or [::1] (also ::ffff:127.x)."""
    if not bracketed and _plain_name(name) == "localhost":
        return True
    address = _address(name, bracketed=bracketed)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address is not None and address.is_loopback


def _plain_name(name: str) -> str:
    return name.lower().removesuffix(".")


def _address(name: str, *, bracketed: bool) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The literal address a Host names: IPv6 only in brackets, IPv4 only without."""
    try:
        if bracketed:
            return ipaddress.IPv6Address(name)
        return ipaddress.IPv4Address(name.removesuffix("."))
    except ValueError:
        return None
