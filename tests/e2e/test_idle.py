"""IDLE (RFC 2177) with aioimaplib: a session in IDLE is told about a delivery at once.

C: i1 IDLE              S: + idling
                        (smtplib delivers a message to erin)
                        S: * n+1 EXISTS        <- within a second
C: DONE                 S: i1 OK IDLE terminated
"""

from __future__ import annotations

import asyncio
import time
import uuid

import aioimaplib

from bench.harness import ServerProcess
from tests.e2e.people import ALICE, ERIN
from tests.support.mail import make_message, send

# "At once": the push must not wait for a poll interval. Generous for a loaded 2-core CI box.
MAX_PUSH_LATENCY = 1.5


async def test_idle_sees_new_message_at_once(server: ServerProcess) -> None:
    client = aioimaplib.IMAP4_SSL(
        "127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context(), timeout=30
    )
    await client.wait_hello_from_server()
    assert (await client.login(ERIN.address, ERIN.password)).result == "OK"
    selected = await client.select("INBOX")
    assert selected.result == "OK", selected
    exists = next(int(line.split()[0]) for line in selected.lines if line.endswith(b"EXISTS"))

    idle = await client.idle_start(timeout=30)
    assert client.has_pending_idle()
    message = make_message(ALICE.address, [ERIN.address], f"idle-{uuid.uuid4().hex}", "Ping.\n")
    await asyncio.to_thread(send, server, ALICE.address, ALICE.password, [ERIN.address], message)
    acknowledged = time.monotonic()

    pushed: list[bytes] = []
    while f"{exists + 1} EXISTS".encode() not in pushed:
        remaining = acknowledged + 10 - time.monotonic()
        assert remaining > 0, f"no EXISTS pushed within 10 s; got {pushed}"
        pushed += [bytes(line) for line in await client.wait_server_push(timeout=remaining)]
    latency = time.monotonic() - acknowledged

    client.idle_done()
    done = await asyncio.wait_for(idle, 10)
    assert done.result == "OK", done
    await client.logout()
    assert latency < MAX_PUSH_LATENCY, f"EXISTS came {latency:.2f} s after the 250"
