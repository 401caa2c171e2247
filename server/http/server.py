"""A small HTTP/1.1 server (RFC 9112) on h11: a route table of path prefixes to async handlers.

h11 is the sans-I/O protocol core; this module is the thin asyncio adapter. One instance can
listen on several sockets (plain or TLS):

    http = HttpServer([("/fhir/", fhir.handle), ("/pki/", pki_route)])
    await http.listen(host, 8443, ssl=tls_context)

A handler gets a :class:`Request` and returns a :class:`Response`. The longest matching prefix
wins; no match is a 404. A malformed request gets a 400, and a handler's exception a 500
(logged by type only: URLs can carry identifiers). A HEAD request is answered as the GET of the
same target without its body (RFC 9110 §9.3.2).

Every request is bounded by :class:`server.http.limits.HttpLimits` (issue 26): the head's size
and number of fields (431), the target (414), the query's fields (400), the body (413, on its
Content-Length before it is read), the time for the request to arrive from its first byte
(408, then closed: a client dripping a byte at a time cannot hold a connection for ever), an
idle keep-alive connection's life, and the open connections, in all and per client address
(503, then closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

import h11
import structlog

from server.http.limits import ConnectionSlots, HttpLimits, Refusal, head_problem
from server.listeners import endpoint

log = structlog.get_logger("hygie.http")
READ_TIMEOUT = HttpLimits.idle_timeout
REQUEST_TIMEOUT = HttpLimits.request_timeout


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # as sent: path and query, percent-encoded
    path: str  # decoded path
    query: list[tuple[str, str]]  # decoded, in order, repeated names kept
    headers: dict[str, str]  # lower-case names
    body: bytes
    scheme: str  # "http" or "https"
    peer: str = "unknown"  # the client's IP address (rate limits, audit)

    @property
    def host(self) -> str:
        return self.headers.get("host", "localhost")


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]


def text(status: int, message: str) -> Response:
    return Response(status, "text/plain; charset=utf-8", (message + "\n").encode())


class HttpServer:
    def __init__(
        self, routes: Sequence[tuple[str, Handler]], *, max_body: int | None = None,
        request_timeout: float | None = None, limits: HttpLimits | None = None,
    ):  # fmt: skip
        # Longest prefix first, so "/fhir/metadata" can override "/fhir/".
        self.routes = sorted(routes, key=lambda r: len(r[0]), reverse=True)
        limits = limits or HttpLimits()
        if max_body is not None:
            limits = dataclasses.replace(limits, max_body=max_body)
        if request_timeout is not None:
            limits = dataclasses.replace(limits, request_timeout=request_timeout)
        self.limits = limits
        self.max_body = limits.max_body
        self.request_timeout = limits.request_timeout
        self.slots = ConnectionSlots.of(limits)

    async def listen(
        self, host: str, port: int, *, ssl: ssl.SSLContext | None = None
    ) -> asyncio.Server:
        scheme = "https" if ssl is not None else "http"

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.handle(reader, writer, scheme)

        return await asyncio.start_server(serve, **endpoint(host, port), ssl=ssl)

    def route(self, path: str) -> Handler | None:
        for prefix, handler in self.routes:
            if path.startswith(prefix) or path == prefix.rstrip("/"):
                return handler
        return None

    async def dispatch(self, request: Request) -> Response:
        handler = self.route(request.path)
        if handler is None:
            return text(404, "not found")
        try:
            return await handler(request)
        except Exception as exc:
            log.error("http_handler_failed", error=type(exc).__name__)
            return text(500, "internal error")

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scheme: str = "http"
    ) -> None:
        address = writer.get_extra_info("peername")
        peer = str(address[0]) if isinstance(address, tuple) and address else "unknown"
        if not self.slots.take(peer):
            log.warning("http_connections_refused", reason="too many connections")
            with contextlib.suppress(Exception):
                writer.write(_raw_refusal(Refusal(503, "too many connections")))
                await asyncio.wait_for(writer.drain(), 5)
            with contextlib.suppress(Exception):
                writer.close()
            return
        try:
            await self._serve(reader, writer, scheme, peer)
        finally:
            self.slots.release(peer)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scheme: str, peer: str
    ) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head)
        try:
            while True:
                head: h11.Request | None = None
                body = bytearray()
                loop = asyncio.get_running_loop()
                deadline: float | None = None  # set by the request's first byte
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        if deadline is None and conn.trailing_data[0]:
                            deadline = loop.time() + self.request_timeout
                        idle = self.limits.idle_timeout
                        wait = idle if deadline is None else deadline - loop.time()
                        try:
                            data = await asyncio.wait_for(reader.read(65536), max(wait, 0))
                        except TimeoutError:
                            if deadline is not None:
                                await self._timed_out(writer, conn)
                            return
                        if deadline is None and data:
                            deadline = loop.time() + self.request_timeout
                        conn.receive_data(data)
                        continue
                    if isinstance(event, h11.Request):
                        head = event
                        refusal = head_problem(event.target, event.headers, self.limits)
                        if refusal is not None:
                            await self._send(writer, conn, text(refusal.status, refusal.reason))
                            return
                    elif isinstance(event, h11.Data):
                        body += event.data
                        if len(body) > self.max_body:
                            await self._send(writer, conn, text(413, "request body too large"))
                            return
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        return
                assert head is not None
                request = _request(head, bytes(body), scheme, peer)
                head_only = request.method == "HEAD"
                if head_only:
                    request = dataclasses.replace(request, method="GET")
                response = await self.dispatch(request)
                await self._send(writer, conn, response, with_body=not head_only)
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            reason = "request head too large" if status == 431 else "bad request"
            with contextlib.suppress(Exception):
                await self._send(writer, conn, text(status, reason))
        except (TimeoutError, ConnectionError, ssl.SSLError, h11.LocalProtocolError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _timed_out(self, writer: asyncio.StreamWriter, conn: h11.Connection) -> None:
        """The 408 (RFC 9110 §15.5.9) for a request that did not arrive in time. Before its
        head is whole, h11 has no request to answer: the bytes are written as they are."""
        if conn.our_state is h11.SEND_RESPONSE:
            await self._send(writer, conn, text(408, "request timeout"))
            return
        writer.write(_raw_refusal(Refusal(408, "request timeout")))
        await writer.drain()

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        conn: h11.Connection,
        response: Response,
        *,
        with_body: bool = True,
    ) -> None:
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *response.headers,
        ]
        writer.write(conn.send(h11.Response(status_code=response.status, headers=headers)) or b"")
        if with_body:  # a HEAD answer keeps the GET's Content-Length, and h11 wants no data
            writer.write(conn.send(h11.Data(data=response.body)) or b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()


_REASONS = {408: "Request Timeout", 503: "Service Unavailable"}


def _raw_refusal(refusal: Refusal) -> bytes:
    """A closing answer written before h11 has a request to answer."""
    body = (refusal.reason + "\n").encode()
    return (
        f"HTTP/1.1 {refusal.status} {_REASONS[refusal.status]}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


def _request(head: h11.Request, body: bytes, scheme: str, peer: str = "unknown") -> Request:
    target = head.target.decode("ascii", "replace")
    parts = urlsplit(target)
    return Request(
        method=head.method.decode("ascii", "replace"),
        target=target,
        path=unquote(parts.path),
        query=parse_qsl(parts.query, keep_blank_values=True),
        headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers},
        body=body,
        scheme=scheme,
        peer=peer,
    )
