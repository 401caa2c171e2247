"""The limits of an HTTP request and of the connections that carry them (issue 26).

Pure of any socket and of the h11 listener, so that the listener that replaces it keeps them:
:class:`HttpLimits` holds the figures, :func:`head_problem` judges a request's head (request
line and header fields) before its body is read, and :class:`ConnectionSlots` counts the open
connections, in all and per client address. docs/security.md "Limits of untrusted input"
lists them with the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HttpLimits:
    #: The request line and the header fields together (bytes): beyond, 431 (RFC 6585 §5).
    max_head: int = 16 * 1024
    #: Header fields in one request: beyond, 431.
    max_headers: int = 100
    #: The request target (path and query, percent-encoded): beyond, 414 (RFC 9110 §15.5.15).
    max_target: int = 8 * 1024
    #: Fields of the query string: beyond, 400 (``a&a&a…`` would cost a list entry each).
    max_query_fields: int = 100
    #: The body (bytes, after any chunked coding): beyond, 413 (RFC 9110 §15.5.14), refused
    #: on its Content-Length before it is read when it declares one.
    max_body: int = 64 * 1024
    #: Seconds for a whole request to arrive from its first byte: beyond, 408 (a client
    #: dripping a byte at a time cannot hold a connection for ever).
    request_timeout: float = 60.0
    #: Seconds an idle keep-alive connection is kept.
    idle_timeout: float = 30.0
    #: Open connections of one listener, and of one client address: beyond, 503 and closed.
    max_connections: int = 1000
    max_connections_per_peer: int = 100


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


def head_problem(
    target: bytes, headers: Sequence[tuple[bytes, bytes]], limits: HttpLimits
) -> Refusal | None:
    """Why a request head breaks a limit, or None. (A head arriving in pieces is also bounded
    as it is read, by the listener: :attr:`HttpLimits.max_head`.)"""
    if len(headers) > limits.max_headers:
        return Refusal(431, f"at most {limits.max_headers} header fields")
    if len(target) + sum(len(n) + len(v) + 4 for n, v in headers) > limits.max_head:
        return Refusal(431, "request head too large")
    if len(target) > limits.max_target:
        return Refusal(414, f"the request target is at most {limits.max_target} bytes")
    query = target.partition(b"?")[2]
    if query.count(b"&") >= limits.max_query_fields:  # fields: one more than the "&"
        return Refusal(400, f"at most {limits.max_query_fields} query parameters")
    for name, value in headers:
        if name.lower() == b"content-length" and value.isdigit():
            if int(value) > limits.max_body:
                return Refusal(413, f"the request body is at most {limits.max_body} bytes")
    return None


@dataclass
class ConnectionSlots:
    """Open connections, in all and per client address."""

    total: int
    per_peer: int
    open: int = 0
    by_peer: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, limits: HttpLimits) -> ConnectionSlots:
        return cls(limits.max_connections, limits.max_connections_per_peer)

    def take(self, peer: str) -> bool:
        """A place for a new connection from ``peer``; False when none is left."""
        held = self.by_peer.get(peer, 0)
        if self.open >= self.total or held >= self.per_peer:
            return False
        self.open += 1
        self.by_peer[peer] = held + 1
        return True

    def release(self, peer: str) -> None:
        self.open -= 1
        held = self.by_peer.get(peer, 0) - 1
        if held > 0:
            self.by_peer[peer] = held
        else:
            self.by_peer.pop(peer, None)
