"""Who sent a request, by network address: X-Forwarded-For believed only from configured reverse
proxies (CITYGW_FORWARDED_ALLOW_IPS). Shared by the staff sign-in limits and web chat's per-address limit."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Protocol

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Request(Protocol):  # what aiohttp's web.Request offers; common does not import aiohttp
    @property
    def remote(self) -> str | None: ...

    @property
    def headers(self): ...


def parse_address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:1.2.3.4 is the IPv4 client 1.2.3.4
    return mapped or address


def client_address(request: Request, proxies: Sequence[Network]) -> str | None:
    """The address of whoever sent the request. X-Forwarded-For is believed only from a configured
    reverse proxy, and only its rightmost entries: each proxy appends the address it saw, and anything
    to the left of the last trusted proxy the client could have written."""
    peer = request.remote
    if not proxies or peer is None:
        return peer
    hop = parse_address(peer)
    if hop is None or not any(hop in net for net in proxies):
        return peer
    entries = [e for header in request.headers.getall("X-Forwarded-For", []) for e in header.split(",")]
    for entry in reversed(entries):
        address = parse_address(entry)
        if address is None:  # a proxy wrote something unreadable: trust nothing further left
            return str(hop)
        hop = address
        if not any(hop in net for net in proxies):
            return str(hop)
    return str(hop)  # every hop is a proxy of ours: the leftmost is as far as we can see


def subscriber(ip: str | None) -> str:
    """The address as one subscriber: an IPv6 subscriber gets a whole /64, so counting single addresses
    would not slow them at all."""
    address = parse_address(ip) if ip else None
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address or ip or "-")
