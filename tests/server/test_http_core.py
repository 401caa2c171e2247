"""The HTTP/1.1 core (``server/http/server.py``) on a real socket: routes, HEAD, bad requests,
oversized bodies and a handler's failure, as an HTTP client meets them."""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import AsyncIterator

import pytest

from server.http.server import HttpServer, Request, Response, text


async def hello(request: Request) -> Response:
    if request.method not in ("GET", "POST"):
        return text(405, "method not allowed")
    return Response(200, "text/plain; charset=utf-8", b"bonjour " + request.body)


async def broken(request: Request) -> Response:
    raise RuntimeError("secret detail /patients/123")


@pytest.fixture
async def port() -> AsyncIterator[int]:
    http = HttpServer([("/hello", hello), ("/broken", broken)], max_body=100)
    server = await http.listen("127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


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
async def test_a_request_dripping_in_gets_408(complete_head: bool) -> None:
    """A client sending a header line (or a body byte) every 0.1 s, under the per-read
    timeout each time, is cut off once the request's own deadline passes."""
    http = HttpServer([("/hello", hello)], max_body=100, request_timeout=0.5)
    server = await http.listen("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
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
        server.close()
        await server.wait_closed()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert answer.endswith(b"request timeout\n")
