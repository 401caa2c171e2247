"""Listeners behind a proxy policy (server/listeners.py ``listen``, server/net/listener.py), over
real sockets: a listed proxy's header names the peer every later check reads, anyone else's
header is refused, and everyone else is served as without a policy. Clients connect from
127.0.0.2 (not a proxy) or 127.0.0.1 (the listed proxy).

    C (127.0.0.1, listed): <PROXY v2 203.0.113.9:40000>
    S: 220 peer 203.0.113.9
    C (127.0.0.2): (nothing)
    S: 220 peer 127.0.0.2
    C (127.0.0.2): PROXY TCP4 192.0.2.7 …  (after the greeting)
    S: (closes; log: proxy_refused)
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from structlog.testing import capture_logs

from bench.harness import free_ports
from server.listeners import Listener, ProxyPolicy, listen, stream_factory
from server.net.listener import NOT_A_PROXY, networks
from server.net.proxy_protocol import v1_header, v2_header

PROXY = "127.0.0.1"
CLIENT = "127.0.0.2"


async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The server speaks first, saying whom it sees; then echoes one line."""
    peer = writer.get_extra_info("peername")
    writer.write(f"220 peer {peer[0]}\r\n".encode())
    await writer.drain()
    line = await reader.readline()
    writer.write(b"echo " + line)
    await writer.drain()
    writer.close()


@pytest_asyncio.fixture
async def plain() -> AsyncIterator[tuple[Listener, int]]:
    port = free_ports(1)[0]
    policy = ProxyPolicy(networks([PROXY]), required=True)
    listener = await listen(stream_factory(greet), PROXY, port, proxy=policy, name="test")
    yield listener, port
    listener.close()


async def _connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def test_a_listed_proxys_v2_header_names_the_peer(plain: tuple[Listener, int]) -> None:
    _, port = plain
    reader, writer = await _connect(port, PROXY)
    writer.write(v2_header(("203.0.113.9", 40000), ("127.0.0.1", port)) + b"HELO\r\n")
    assert await reader.readline() == b"220 peer 203.0.113.9\r\n"
    assert await reader.readline() == b"echo HELO\r\n"  # the header's bytes, and only them, read
    writer.close()


async def test_anyone_else_is_served_with_their_own_address(plain: tuple[Listener, int]) -> None:
    _, port = plain
    reader, writer = await _connect(port, CLIENT)
    assert await asyncio.wait_for(reader.readline(), 5) == b"220 peer 127.0.0.2\r\n"
    writer.write(b"HELO\r\n")
    assert await reader.readline() == b"echo HELO\r\n"
    writer.close()


async def test_a_header_from_anyone_else_is_refused(plain: tuple[Listener, int]) -> None:
    _, port = plain
    with capture_logs() as logs:
        reader, writer = await _connect(port, CLIENT)
        assert await asyncio.wait_for(reader.readline(), 5) == b"220 peer 127.0.0.2\r\n"
        writer.write(v1_header(("192.0.2.7", 1234), ("127.0.0.1", port)))
        assert await _closed(reader)  # closed, never echoed
    assert _refused(logs) == [(CLIENT, NOT_A_PROXY)]


async def test_a_listed_proxy_without_a_header_is_refused(plain: tuple[Listener, int]) -> None:
    _, port = plain
    with capture_logs() as logs:
        reader, writer = await _connect(port, PROXY)
        writer.write(b"EHLO direct\r\n")
        assert await _closed(reader)
    assert [peer for peer, _ in _refused(logs)] == [PROXY]


async def _closed(reader: asyncio.StreamReader) -> bool:
    """The server closed the connection without a byte more (a reset: it left ours unread)."""
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        return True


def _refused(logs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["peer"], e["reason"]) for e in logs if e["event"] == "proxy_refused"]


async def test_on_a_tls_port_a_header_from_anyone_else_is_refused_before_the_handshake() -> None:
    port = free_ports(1)[0]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    policy = ProxyPolicy(networks([PROXY]), required=True)
    listener = await listen(stream_factory(greet), PROXY, port, ssl=context, proxy=policy,
                            name="tls")  # fmt: skip
    try:
        with capture_logs() as logs:
            reader, writer = await _connect(port, CLIENT)
            writer.write(v2_header(("192.0.2.7", 1234), ("127.0.0.1", port)))
            assert await _closed(reader)
        assert _refused(logs) == [(CLIENT, NOT_A_PROXY)]
    finally:
        listener.close()
