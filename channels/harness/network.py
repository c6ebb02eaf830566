"""Fail any network call that leaves the machine: channel tests talk to local provider servers only."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator

_real_getaddrinfo = socket.getaddrinfo


class RealNetworkCall(AssertionError):
    pass


def _is_local(host: object) -> bool:
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


def _guarded_getaddrinfo(host, *args, **kwargs):  # socket.getaddrinfo's own signature
    if not _is_local(host):
        raise RealNetworkCall(f"a test tried to reach {host}: channel tests must use the local provider servers")
    return _real_getaddrinfo(host, *args, **kwargs)


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Within the block, resolving any host but 127.0.0.1/localhost fails the test."""
    socket.getaddrinfo = _guarded_getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = _real_getaddrinfo


def unused_url() -> str:
    """A loopback URL where nothing listens: a provider that is down. The port was free a moment ago;
    nothing in a test run binds ports it did not ask the OS for, so it stays free."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"
