"""Listening sockets that take the PROXY protocol from the configured proxies, and from no one
else (the asyncio adapter of :mod:`server.net.proxy_protocol`).

Without ``[server] proxy_from``, :func:`server.listeners.listen` is ``loop.create_server`` and
no header is ever read. With it, it makes a :class:`ProxiedListener`, on the socket the
supervisor handed down (``hygie serve --workers N``) or one it binds, and each connection is
admitted before the listener's protocol sees a byte:

- from a listed proxy, the header comes first (within :data:`HEADER_TIMEOUT`); a missing or
  malformed one closes the connection with a ``proxy_refused`` log line, unless
  ``[server] proxy_required = false`` lets a listed host connect without one. The header's
  source becomes the connection's peer: the accepted socket is handed to asyncio as one whose
  ``getpeername()`` answers the client's address, so SMTP, IMAP, HTTP, TLS and whatever reads
  ``get_extra_info("peername")`` (the login guard, rate limits, the audit log, ``Received:``)
  see the client, with no second notion of "the real address" to forget somewhere;
- from any other address, a header is never read: if the first bytes look like one, the
  connection is closed with a ``proxy_refused`` log line (on an implicit-TLS port, before the
  handshake; on a port where the server speaks first, when the client's first bytes arrive).

The header is consumed exactly (peeked, then read to its last byte), so what follows it (a TLS
ClientHello) stays in the socket for the listener's protocol.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from server.config import Config
from server.net.proxy_protocol import (
    MAX_HEADER,
    ProxyHeader,
    ProxyProtocolError,
    could_be_header,
    parse,
)

log = structlog.get_logger("hygie.net")

#: Seconds a listed proxy has to send its whole header (HAProxy sends it with the connection).
HEADER_TIMEOUT = 5.0
#: With ``proxy_required = false``, on a port where the server speaks first: how long a
#: connection from a listed host is given to start with a header before it is taken as direct.
OPTIONAL_HEADER_WAIT = 1.0
#: Seconds a client of an implicit-TLS port has to send its first bytes (asyncio's own TLS
#: handshake timeout).
FIRST_BYTES_TIMEOUT = 60.0
#: A header arriving in pieces is looked at again this often (it is normally one segment).
_PARTIAL_RETRY = 0.005
BACKLOG = 511
NOT_A_PROXY = "a PROXY header from an address not in [server] proxy_from"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ProtocolFactory = Callable[[], asyncio.BaseProtocol]
StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Listener(Protocol):
    """What the server keeps of a listener: ``asyncio.Server`` or :class:`ProxiedListener`."""

    @property
    def sockets(self) -> Sequence[Any]: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``[server] proxy_from``: addresses or CIDR blocks (ValueError names a bad entry)."""
    found: list[Network] = []
    for entry in entries:
        try:
            found.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {entry!r}") from None
    return tuple(found)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return ip


@dataclass(frozen=True)
class ProxyPolicy:
    """Whose PROXY headers are read (``[server] proxy_from``) and whether they must send one
    (``[server] proxy_required``)."""

    proxies: tuple[Network, ...] = ()
    required: bool = True

    @classmethod
    def of(cls, config: Config) -> ProxyPolicy:
        return cls(networks(config.server.proxy_from), config.server.proxy_required)

    @property
    def enabled(self) -> bool:
        return bool(self.proxies)

    def trusts(self, peer: str) -> bool:
        ip = _address(peer)
        return ip is not None and any(ip in net for net in self.proxies)


def stream_factory(handler: StreamHandler, limit: int = 2**16) -> ProtocolFactory:
    """The protocol ``asyncio.start_server`` makes for a ``(reader, writer)`` handler."""

    def factory() -> asyncio.BaseProtocol:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, handler, loop=loop)

    return factory


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _ClientSocket(socket.socket):
    """An accepted connection whose peer, for whoever asks, is the client the proxy named."""

    _client: tuple[str, int]

    def getpeername(self) -> tuple[str, int]:
        return self._client


def _as_client(conn: socket.socket, client: tuple[str, int]) -> socket.socket:
    sock = _ClientSocket(conn.family, conn.type, conn.proto, fileno=conn.detach())
    sock._client = client
    sock.setblocking(False)
    return sock


class ProxiedListener:
    """One listening address (or one per address ``host`` resolves to) whose connections are
    admitted by :class:`ProxyPolicy` before ``factory``'s protocol takes them."""

    def __init__(
        self,
        factory: ProtocolFactory,
        *,
        ssl: ssl_module.SSLContext | None,
        policy: ProxyPolicy,
        name: str,
    ) -> None:
        self.factory = factory
        self.ssl = ssl
        self.policy = policy
        self.name = name
        self._sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._admitting: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()

    @property
    def sockets(self) -> Sequence[socket.socket]:
        return tuple(self._sockets)

    def is_serving(self) -> bool:
        return bool(self._accepting) and not self._closed.is_set()

    def adopt(self, sock: socket.socket) -> None:
        """Accept on a listening socket bound elsewhere (the supervisor's, for one worker)."""
        sock.setblocking(False)
        self._sockets.append(sock)
        self._start()

    async def bind(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        seen: set[tuple[int, Any]] = set()
        try:
            for family, kind, proto, _, address in infos:
                if (family, address) in seen:
                    continue
                seen.add((family, address))
                sock = socket.socket(family, kind, proto)
                self._sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(BACKLOG)
                sock.setblocking(False)
        except BaseException:
            for sock in self._sockets:
                sock.close()
            self._sockets = []
            raise
        self._start()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            task = loop.create_task(self._accept(sock), name=f"accept-{self.name}")
            self._accepting.append(task)

    def close(self) -> None:
        """Stop accepting (open connections go on, as with ``asyncio.Server.close``)."""
        if self._closed.is_set():
            return
        self._closed.set()
        for task in self._accepting:
            task.cancel()
        for task in list(self._admitting):
            task.cancel()
        for sock in self._sockets:
            sock.close()

    async def wait_closed(self) -> None:
        await self._closed.wait()
        await asyncio.gather(*self._accepting, *self._admitting, return_exceptions=True)

    # -- accepting ---------------------------------------------------------------------------

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed.is_set():
            try:
                conn, address = await loop.sock_accept(listening)
            except asyncio.CancelledError:
                raise
            except OSError as exc:  # out of file descriptors, or the socket closed
                if self._closed.is_set():
                    return
                log.warning("accept_failed", listener=self.name, error=type(exc).__name__)
                await asyncio.sleep(0.1)
                continue
            task = loop.create_task(self._admit(conn, address))
            self._admitting.add(task)
            task.add_done_callback(self._admitting.discard)

    async def _admit(self, conn: socket.socket, address: Any) -> None:
        peer = str(address[0]) if isinstance(address, tuple) else str(address)
        trusted = self.policy.trusts(peer)
        try:
            client = await self._client(conn, trusted)
        except _Refused as refusal:
            log.warning("proxy_refused", listener=self.name, peer=peer, reason=refusal.reason)
            conn.close()
            return
        except (OSError, TimeoutError):
            conn.close()
            return
        except asyncio.CancelledError:  # the listener closed
            conn.close()
            raise
        sock = conn if client is None else _as_client(conn, client)
        factory = self.factory
        if not trusted and self.ssl is None:
            factory = _guarded(factory, self.name, peer)
        loop = asyncio.get_running_loop()
        try:
            if self.ssl is None:
                await loop.connect_accepted_socket(factory, sock)
            else:
                await loop.connect_accepted_socket(
                    factory, sock, ssl=self.ssl, ssl_handshake_timeout=FIRST_BYTES_TIMEOUT
                )
        except (OSError, TimeoutError, ssl_module.SSLError):
            sock.close()  # a failed TLS handshake: as asyncio.Server, nothing to say

    async def _client(self, conn: socket.socket, trusted: bool) -> tuple[str, int] | None:
        """The client address a listed proxy's header gives (None: keep the connection's)."""
        if trusted:
            header = await self._header(conn)
            return header.source if header is not None else None
        if self.ssl is not None:
            # The client speaks first (TLS): its first bytes are there to be looked at.
            first = await _peek(conn, FIRST_BYTES_TIMEOUT)
            if first and could_be_header(first):
                raise _Refused(NOT_A_PROXY)
        return None

    async def _header(self, conn: socket.socket) -> ProxyHeader | None:
        loop = asyncio.get_running_loop()
        optional = not self.policy.required
        # Where the server speaks first, a direct connection sends nothing until greeted.
        wait = OPTIONAL_HEADER_WAIT if optional and self.ssl is None else HEADER_TIMEOUT
        deadline = loop.time() + wait
        last = -1
        while True:
            try:
                data = await _peek(conn, max(deadline - loop.time(), 0))
            except TimeoutError:
                if optional and last <= 0:
                    return None
                raise _Refused(f"no PROXY header within {wait:g} s") from None
            if not data:
                raise _Refused("closed before its PROXY header")
            if optional and not could_be_header(data):
                return None  # a listed host connecting directly
            try:
                header = parse(data)
            except ProxyProtocolError as exc:
                raise _Refused(str(exc)) from None
            if header is not None:
                _consume(conn, header.length)
                return header
            if len(data) == last:  # nothing new yet: the rest of the header is on its way
                await asyncio.sleep(_PARTIAL_RETRY)
            last = len(data)


async def _peek(conn: socket.socket, seconds: float) -> bytes:
    """The bytes waiting on ``conn`` (up to a header's worth), without consuming them, once
    there is at least one (or EOF: ``b""``); TimeoutError after ``seconds``."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(seconds):
        while True:
            try:
                return conn.recv(MAX_HEADER, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                pass
            ready = loop.create_future()
            loop.add_reader(conn.fileno(), _set_once, ready)
            try:
                await ready
            finally:
                loop.remove_reader(conn.fileno())


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _consume(conn: socket.socket, length: int) -> None:
    """Read exactly ``length`` bytes that a peek showed are waiting."""
    while length:
        chunk = conn.recv(length)
        if not chunk:
            raise OSError("connection closed inside its PROXY header")
        length -= len(chunk)


class _FirstBytesGuard(asyncio.Protocol):
    """A direct client's connection on a port where the server speaks first: the protocol gets
    every byte, but the first ones must not be a PROXY header (refused and logged: a header
    from an address that is not a proxy is never read, nor answered as a command)."""

    def __init__(self, inner: asyncio.BaseProtocol, listener: str, peer: str) -> None:
        self._inner = inner
        self._listener = listener
        self._peer = peer
        self._held = b""
        self._decided = False
        self._refused = False
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        inner: Any = self._inner
        if self._refused:
            return
        if self._decided:
            inner.data_received(data)
            return
        self._held += data
        held = self._held
        if could_be_header(held):
            if held.startswith(b"PROXY ") or len(held) >= 12:
                log.warning("proxy_refused", listener=self._listener, peer=self._peer,
                            reason=NOT_A_PROXY)  # fmt: skip
                self._refused = True
                if self._transport is not None:
                    self._transport.close()
            return  # a prefix of a header: wait for more
        self._decided = True
        self._held = b""
        inner.data_received(held)

    def eof_received(self) -> bool | None:
        inner: Any = self._inner
        keep_open: bool | None = inner.eof_received()
        return keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def _guarded(factory: ProtocolFactory, listener: str, peer: str) -> ProtocolFactory:
    def guarded() -> asyncio.BaseProtocol:
        return _FirstBytesGuard(factory(), listener, peer)

    return guarded



def client_reader(
    policy: ProxyPolicy, *, tls: ssl_module.SSLContext | None, name: str
) -> Callable[[socket.socket, tuple[str, int]], Awaitable[tuple[str, int]]]:
    """For a listener that accepts by itself (the HTTPS side, on uvicorn): given an accepted
    socket and its peer, the client's address under ``policy``, read as
    :class:`ProxiedListener` reads it; a refused connection raises ``ConnectionError`` (the
    listener closes it)."""
    admission = ProxiedListener(lambda: asyncio.Protocol(), ssl=tls, policy=policy, name=name)

    async def client(conn: socket.socket, peer: tuple[str, int]) -> tuple[str, int]:
        if not policy.enabled:
            return peer
        try:
            found = await admission._client(conn, policy.trusts(str(peer[0])))
        except _Refused as refusal:
            log.warning("proxy_refused", listener=name, peer=str(peer[0]), reason=refusal.reason)
            raise ConnectionError(refusal.reason) from None
        return found if found is not None else peer

    return client
