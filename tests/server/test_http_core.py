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
