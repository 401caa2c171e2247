"""The two HTTP/1.1 listeners on a real socket: the HTTPS one (uvicorn serving the Starlette
application, ``server/http/listener.py`` and ``app.py``) and the CA publication point's
(``server/http/server.py``, h11): routes, HEAD, bad requests, oversized bodies, a handler's
failure and a request dripping in, as an HTTP client meets them, alike on both."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route

from server.http.app import application
from server.http.limits import HttpLimits
from server.http.listener import HttpsServer
from server.http.server import HttpServer, Request, Response, text


async def hello(request: Request) -> Response:
    if request.method not in ("GET", "POST"):
        return text(405, "method not allowed")
    return Response(200, "text/plain; charset=utf-8", b"bonjour " + request.body)


async def broken(request: Request) -> Response:
    raise RuntimeError("secret detail /patients/123")


async def asgi_hello(request: StarletteRequest) -> StarletteResponse:
    return StarletteResponse(b"bonjour " + await request.body(), media_type="text/plain")


async def asgi_broken(request: StarletteRequest) -> StarletteResponse:
    raise RuntimeError("secret detail /patients/123")


Stop = Callable[[], Awaitable[None]]


async def listen(stack: str, limits: HttpLimits) -> tuple[int, Stop]:
    """One of the two listeners on a free port, with ``limits``: its port and how to stop it."""
    if stack == "uvicorn":
        routes = [Route("/hello", asgi_hello, methods=["GET", "POST"]),
                  Route("/broken", asgi_broken)]  # fmt: skip
        https = await HttpsServer.bind(application(routes, limits), "127.0.0.1", 0, tls=None,
                                       limits=limits)  # fmt: skip
        await https.start()
        return https.port, https.stop
    http = HttpServer([("/hello", hello), ("/broken", broken)], limits=limits)
    server = await http.listen("127.0.0.1", 0)

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    return server.sockets[0].getsockname()[1], stop


@pytest.fixture(params=["uvicorn", "h11"])
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def port(stack: str) -> AsyncIterator[int]:
    number, stop = await listen(stack, dataclasses.replace(HttpLimits(), max_body=100))
    yield number
    await stop()


def ask(
    port: int, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body)
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        connection.close()


async def test_get_post_and_head(port: int) -> None:
    status, headers, body = await asyncio.to_thread(ask, port, "GET", "/hello")
    assert (status, body) == (200, b"bonjour ")
    status, _, body = await asyncio.to_thread(ask, port, "POST", "/hello", b"docteur")
    assert (status, body) == (200, b"bonjour docteur")
    # HEAD: the GET's status and headers, no body, and the connection stays usable.
    status, headers, body = await asyncio.to_thread(ask, port, "HEAD", "/hello")
    assert (status, headers["content-length"], body) == (200, "8", b"")


async def test_two_requests_on_one_connection_after_head(port: int) -> None:
    def both() -> list[tuple[int, bytes]]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        answers = []
        for method in ("HEAD", "GET"):
            connection.request(method, "/hello")
            reply = connection.getresponse()
            answers.append((reply.status, reply.read()))
        connection.close()
        return answers

    assert await asyncio.to_thread(both) == [(200, b""), (200, b"bonjour ")]


async def test_errors_are_answers(port: int) -> None:
    assert (await asyncio.to_thread(ask, port, "GET", "/nowhere"))[0] == 404
    status, _, body = await asyncio.to_thread(ask, port, "GET", "/broken")
    assert status == 500 and b"secret" not in body
    assert (await asyncio.to_thread(ask, port, "POST", "/hello", b"x" * 500))[0] == 413


async def test_malformed_request_gets_400(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("complete_head", [False, True])
async def test_a_request_dripping_in_gets_408(stack: str, complete_head: bool) -> None:
    """A client sending a header line (or a body byte) every 0.1 s, under the per-read
    timeout each time, is cut off once the request's own deadline passes."""
    limits = dataclasses.replace(HttpLimits(), max_body=100, request_timeout=0.5)
    port, stop = await listen(stack, limits)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"POST /hello HTTP/1.1\r\nHost: x\r\n"
    writer.write(head + (b"Content-Length: 100\r\n\r\n" if complete_head else b""))

    async def drip() -> None:
        for _ in range(50):  # 5 s at most
            await asyncio.sleep(0.1)
            writer.write(b"x" if complete_head else b"X-Slow: 1\r\n")
            await writer.drain()

    dripping = asyncio.create_task(drip())
    try:
        answer = await asyncio.wait_for(reader.read(), 3)
    finally:
        dripping.cancel()
        writer.close()
        await stop()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert answer.endswith(b"request timeout\n")


async def test_a_chunked_body_over_the_limit_gets_413(stack: str) -> None:
    """No Content-Length to refuse on: the body is counted as it comes."""
    port, stop = await listen(stack, dataclasses.replace(HttpLimits(), max_body=100))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + b"80\r\n" + b"x" * 128 + b"\r\n0\r\n\r\n")  # fmt: skip
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await stop()
    assert answer.startswith(b"HTTP/1.1 413 ")
