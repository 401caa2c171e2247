"""Listening sockets: bound here by the listeners themselves (one process), or handed down by
the supervisor of ``hygie serve --workers N`` (:mod:`server.workers`).

With several workers the supervisor binds, for each worker, one socket per port with
``SO_REUSEPORT``, so that the kernel spreads new connections evenly over the workers' sockets,
and hands each worker its own set (inherited file descriptors). Every listener asks
:func:`endpoint` where to listen: the inherited socket for its port if there is one, else the
configured address and port.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

_INHERITED: dict[int, socket.socket] = {}


class ListenError(Exception):
    """A port cannot be listened on; the message says which and why."""


def inherit(fds: Mapping[int, int]) -> None:
    """Adopt the listening sockets handed down (port → file descriptor)."""
    for port, fd in fds.items():
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        _INHERITED[port] = sock


def inherited() -> dict[int, socket.socket]:
    return dict(_INHERITED)


def endpoint(host: str, port: int) -> dict[str, Any]:
    """Keyword arguments for ``loop.create_server`` / ``asyncio.start_server``."""
    sock = _INHERITED.get(port)
    if sock is not None:
        return {"sock": sock}
    return {"host": host, "port": port}


def address_of(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The one address ``host`` names (several workers share one socket address per port)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError(f"[server] listen = {host!r}: {exc.strerror}") from None
    addresses = list(dict.fromkeys((family, sockaddr[:2]) for family, _, _, _, sockaddr in infos))
    if len(addresses) != 1:
        names = ", ".join(str(a[1][0]) for a in addresses)
        raise ListenError(
            f"[server] listen = {host!r} names {len(addresses)} addresses ({names}); with "
            "several workers give one address (127.0.0.1, ::1, 0.0.0.0 or ::)"
        )
    family, sockaddr = addresses[0]
    return family, sockaddr


def bind(host: str, port: int, *, reuse_port: bool, backlog: int = 100) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``SO_REUSEADDR`` as asyncio sets it)."""
    family, sockaddr = address_of(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def probe(host: str, port: int) -> None:
    """Fail if another process listens on ``host:port`` already, even one that allows sharing
    it (``SO_REUSEPORT``): a socket bound without that option is refused then."""
    bind(host, port, reuse_port=False).close()
