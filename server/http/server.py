"""A small HTTP/1.1 server (RFC 9112) on h11: a route table of path prefixes to async handlers.

h11 is the sans-I/O protocol core; this module is the thin asyncio adapter. One instance can
listen on several sockets (plain or TLS):

    http = HttpServer([("/fhir/", fhir.handle), ("/pki/", pki_route)])
    await http.listen(host, 8443, ssl=tls_context)

A handler gets a :class:`Request` and returns a :class:`Response`. The longest matching prefix
wins; no match is a 404. A malformed request gets a 400, a body over ``max_body`` a 413, and
a handler's exception a 500 (logged by type only: URLs can carry identifiers). A HEAD request
is answered as the GET of the same target without its body (RFC 9110 §9.3.2). A request must
arrive whole within ``request_timeout`` seconds of its first byte, else a 408 and the
connection is closed (a client dripping a byte at a time cannot hold it for ever); an idle
keep-alive connection is closed after :data:`READ_TIMEOUT`.
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

log = structlog.get_logger("hygie.http")
READ_TIMEOUT = 30.0
REQUEST_TIMEOUT = 60.0


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
        self, routes: Sequence[tuple[str, Handler]], *, max_body: int = 64 * 1024,
        request_timeout: float = REQUEST_TIMEOUT,
    ):  # fmt: skip
        # Longest prefix first, so "/fhir/metadata" can override "/fhir/".
        self.routes = sorted(routes, key=lambda r: len(r[0]), reverse=True)
        self.max_body = max_body
        self.request_timeout = request_timeout

    async def listen(
        self, host: str, port: int, *, ssl: ssl.SSLContext | None = None
    ) -> asyncio.Server:
        scheme = "https" if ssl is not None else "http"

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.handle(reader, writer, scheme)

        return await asyncio.start_server(serve, host, port, ssl=ssl)

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
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        address = writer.get_extra_info("peername")
        peer = str(address[0]) if isinstance(address, tuple) and address else "unknown"
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
                        wait = READ_TIMEOUT if deadline is None else deadline - loop.time()
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
        except h11.RemoteProtocolError:
            with contextlib.suppress(Exception):
                await self._send(writer, conn, text(400, "bad request"))
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
        writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8"
                     b"\r\nContent-Length: 16\r\nConnection: close\r\n\r\nrequest timeout\n")
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
