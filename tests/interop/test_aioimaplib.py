"""``aioimaplib``: an asyncio client, with IDLE woken up by another client's APPEND."""

from __future__ import annotations

import asyncio
import time

import aioimaplib

from tests.imap_server.messages import text_message
from tests.imap_server.servers import Account, PreparedServer
from tests.interop.conftest import imap


async def connect(server: PreparedServer, account: Account) -> aioimaplib.IMAP4_SSL:
    client = aioimaplib.IMAP4_SSL(
        host="127.0.0.1", port=server.imap_tls_port, ssl_context=server.ssl_context(), timeout=30
    )
    await client.wait_hello_from_server()
    response = await client.login(account.address, account.password)
    assert response.result == "OK", response
    return client


async def test_append_select_fetch(server: PreparedServer, account: Account) -> None:
    client = await connect(server, account)
    message = text_message("Hello from aioimaplib")
    response = await client.append(message, mailbox="INBOX", flags="(\\Flagged)")
    assert response.result == "OK", response
    response = await client.select("INBOX")
    assert response.result == "OK" and b"1 EXISTS" in response.lines, response
    response = await client.fetch("1", "(FLAGS BODY.PEEK[])")
    assert response.result == "OK", response
    assert bytes(response.lines[1]) == message
    assert b"\\Flagged" in response.lines[0]
    response = await client.search("FLAGGED")
    assert response.result == "OK" and response.lines[0] == b"1", response
    await client.logout()


async def test_idle_wakes_up_on_new_mail(server: PreparedServer, account: Account) -> None:
    client = await connect(server, account)
    response = await client.select("INBOX")
    assert response.result == "OK", response
    idle = await client.idle_start(timeout=30)
    assert client.has_pending_idle()

    other = imap(server, account)
    started = time.monotonic()
    try:
        await asyncio.to_thread(other.append, "INBOX", "", None, text_message("Wake up"))
        pushed = await client.wait_server_push(timeout=5)
    finally:
        other.logout()
    elapsed = time.monotonic() - started
    assert any(b"1 EXISTS" in line for line in pushed), pushed
    assert elapsed < 5, elapsed
    client.idle_done()
    response = await asyncio.wait_for(idle, 10)
    assert response.result == "OK", response
    await client.logout()
