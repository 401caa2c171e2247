"""The HTTPS listener: uvicorn serving an ASGI application (`server.http.app`) in the event loop
of ``hygie serve``, beside the mail listeners (design.md §7).

uvicorn brings the HTTP/1.1 protocol (h11, sans-I/O) and the request/response cycle; three
things are ours, because a health operator's front door needs them and uvicorn has no setting
for them:

- **the accept path** (:meth:`HttpsServer.startup`): our own accept loop on the listening socket
  instead of ``loop.create_server(ssl=…)``, so that something can be read *before* TLS begins:
  this is where a PROXY protocol v2 header from a configured HAProxy is read (design.md §3),
  with :attr:`HttpsServer.client_address` (the hook: given the accepted socket and its peer,
  it returns the client's address, reading the header when the peer is a trusted proxy). The
  TLS handshake follows on the same socket (``loop.connect_accepted_socket``), with our SSL
  context (the mail listeners' one);
- **the limits of issue 26** (:class:`LimitedH11Protocol`): the open connections in all and per
  client address (503 then closed), an idle connection's life, the time for a whole request to
  arrive from its first byte (408 then closed, slowloris), the head's size (431); the head's
  other limits and the body's are in the application (`server.http.app.Limits`);
- **signals**: ``hygie serve`` owns SIGTERM and SIGINT (it stops every listener in order), so
  uvicorn's own capture of signals is off; :meth:`HttpsServer.stop` ends the listener.

uvicorn's access log is off (a URL can carry an INS), and so are ``X-Forwarded-For`` headers:
the client's address is the socket's, or the PROXY header's from a trusted proxy only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any

import h11
import structlog
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from server.http.limits import ConnectionSlots, HttpLimits, Refusal
from server.listeners import inherited

log = structlog.get_logger("hygie.http")

#: Given the accepted socket and its peer address, the client's address (PROXY v2 goes here).
ClientAddress = Callable[[socket.socket, tuple[str, int]], Awaitable[tuple[str, int]]]

_REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large",
            503: "Service Unavailable"}  # fmt: skip


def raw_refusal(refusal: Refusal) -> bytes:
    """A closing answer written before h11 has a request to answer."""
    body = (refusal.reason + "\n").encode()
    return (
        f"HTTP/1.1 {refusal.status} {_REASONS[refusal.status]}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


async def socket_peer(sock: socket.socket, peer: tuple[str, int]) -> tuple[str, int]:
    """No proxy in front: the client is the socket's peer."""
    return peer


class _Connection(h11.Connection):
    """h11's connection, remembering why it refused the peer's bytes (h11 knows a head too
    large from a malformed one: 431 or 400), which uvicorn answers alike."""

    refused: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.refused = exc
            raise


class LimitedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the connection limits of `server.http.limits`."""

    limits: HttpLimits = HttpLimits()
    slots: ConnectionSlots = ConnectionSlots.of(HttpLimits())

    def __init__(self, *args: Any, client: tuple[str, int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _Connection(h11.SERVER, self.limits.max_head)
        self.proxied_client = client
        self.peer = "unknown"
        self.admitted = False
        self.deadline: asyncio.TimerHandle | None = None

    # -- the connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.proxied_client is not None:
            self.client = self.proxied_client
        self.peer = self.client[0] if self.client else "unknown"
        if not self.slots.take(self.peer):
            log.warning("http_connections_refused", reason="too many connections")
            transport.write(raw_refusal(Refusal(503, "too many connections")))
            transport.close()
            return
        self.admitted = True
        # uvicorn times an idle connection only after a first response: a connection that
        # never sends a byte is timed from its start.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        if self.admitted:
            self.admitted = False
            self.slots.release(self.peer)
        super().connection_lost(exc)

    # -- the request's deadline -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.deadline is None and self.conn.their_state is h11.IDLE and data:
            self.deadline = self.loop.call_later(self.limits.request_timeout, self._timed_out)
        super().data_received(data)
        self._check_arrived()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request already begun is timed from now.
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0] and not (
            self.transport.is_closing() or self.deadline
        ):
            self.deadline = self.loop.call_later(self.limits.request_timeout, self._timed_out)
        self._check_arrived()

    def _check_arrived(self) -> None:
        state = self.conn.their_state
        if state is h11.SEND_BODY or (state is h11.IDLE and self.conn.trailing_data[0]):
            return  # a request is on its way
        self._stop_deadline()

    def _stop_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _timed_out(self) -> None:
        """The 408 (RFC 9110 §15.5.9) for a request that did not arrive in time, then closed."""
        self.deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        if self.conn.our_state is h11.SEND_RESPONSE:
            body = b"request timeout\n"
            head = h11.Response(status_code=408, reason=b"Request Timeout", headers=[
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()), (b"connection", b"close")])
            with contextlib.suppress(h11.LocalProtocolError):
                self.transport.write(self.conn.send(head) or b"")
                self.transport.write(self.conn.send(h11.Data(data=body)) or b"")
                self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        else:
            self.transport.write(raw_refusal(Refusal(408, "request timeout")))
        if self.cycle is not None:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    # -- a head h11 refuses ---------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        refused = self.conn.refused if isinstance(self.conn, _Connection) else None
        status = refused.error_status_hint if refused is not None else 400
        if status == 431:
            self.transport.write(raw_refusal(Refusal(431, "request head too large")))
        else:
            self.transport.write(raw_refusal(Refusal(400, "bad request")))
        self.transport.close()


def protocol_for(limits: HttpLimits) -> type[LimitedH11Protocol]:
    """A protocol class holding one listener's limits and connection count."""
    return type("HttpsProtocol", (LimitedH11Protocol,),
                {"limits": limits, "slots": ConnectionSlots.of(limits)})  # fmt: skip


class HttpsServer(uvicorn.Server):
    """uvicorn's server on sockets we accept from, started and stopped by ``hygie serve``."""

    def __init__(
        self, app: Any, sockets: Sequence[socket.socket], *, tls: ssl.SSLContext | None,
        limits: HttpLimits | None = None, client_address: ClientAddress = socket_peer,
        grace: float = 5.0,
    ) -> None:  # fmt: skip
        limits = limits or HttpLimits()
        self.protocol = protocol_for(limits)
        config = uvicorn.Config(
            app, http=self.protocol, lifespan="off", access_log=False, log_config=None,
            proxy_headers=False, server_header=False, date_header=True,
            timeout_keep_alive=int(limits.idle_timeout),
            timeout_graceful_shutdown=int(grace), h11_max_incomplete_event_size=limits.max_head,
        )  # fmt: skip
        super().__init__(config)
        self.listening = list(sockets)
        self.tls = tls
        self.client_address = client_address
        self._accepting: list[asyncio.Task[None]] = []
        self._admitting: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

    @classmethod
    async def bind(
        cls, app: Any, host: str, port: int, **kwargs: Any
    ) -> HttpsServer:  # fmt: skip
        """Listening sockets for ``host`` (every address it resolves to) and ``port``; under
        ``hygie serve --workers N`` the socket the supervisor handed down for ``port``
        (`server.listeners`), as the mail listeners take theirs."""
        handed = inherited().get(port) if port else None
        if handed is not None:
            return cls(app, [handed], **kwargs)
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)  # fmt: skip
        sockets = []
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(1024)
            sock.setblocking(False)
            sockets.append(sock)
            if port == 0:  # one port for every address
                port = sock.getsockname()[1]
        return cls(app, sockets, **kwargs)

    @property
    def port(self) -> int:
        return int(self.listening[0].getsockname()[1])

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # hygie serve owns the signals

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.servers = []
        for sock in self.listening:
            self._accepting.append(loop.create_task(self._accept(sock), name="https-accept"))
        self.started = True
        self._ready.set()

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(sock)
            except OSError as exc:  # EMFILE and the like: wait, the listener stays
                log.warning("https_accept_failed", error=type(exc).__name__)
                await asyncio.sleep(0.1)
                continue
            task = loop.create_task(self._admit(conn, peer))
            self._admitting.add(task)
            task.add_done_callback(self._admitting.discard)

    async def _admit(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = await self.client_address(conn, peer)

            def protocol() -> LimitedH11Protocol:
                return self.protocol(config=self.config, server_state=self.server_state,
                                     app_state={}, _loop=loop, client=client)  # fmt: skip

            if self.tls is None:
                await loop.connect_accepted_socket(protocol, conn)
            else:
                await loop.connect_accepted_socket(protocol, conn, ssl=self.tls,
                                                   ssl_handshake_timeout=30)  # fmt: skip
        except (OSError, ssl.SSLError, TimeoutError, ValueError) as exc:
            log.debug("https_handshake_failed", error=type(exc).__name__)
            conn.close()

    async def start(self) -> None:
        """Serve from now on, in the running loop."""
        self._task = asyncio.get_running_loop().create_task(self.serve(), name="https")
        ready = asyncio.ensure_future(self._ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._task.done():
            self._task.result()  # its failure, raised here

    async def stop(self) -> None:
        """Stop accepting, close the sockets, let the requests under way finish (grace)."""
        for task in self._accepting:
            task.cancel()
        for sock in self.listening:
            sock.close()
        self.should_exit = True
        if self._task is not None:
            await self._task
        for task in list(self._admitting):
            task.cancel()
