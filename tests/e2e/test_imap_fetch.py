"""Reading mail with Python's imaplib on both IMAP ports (STARTTLS on 2143, implicit TLS on
2993): CAPABILITY, LOGIN, AUTHENTICATE PLAIN, LIST, SELECT/EXAMINE, FETCH and UID FETCH of
FLAGS, UID, RFC822.SIZE, INTERNALDATE, BODY[], BODY.PEEK[HEADER], BODY.PEEK[TEXT], then STORE
+FLAGS (\\Deleted) and EXPUNGE. Also aioimaplib's FETCH."""

from __future__ import annotations

import imaplib
import re
import time
import uuid

import aioimaplib
import pytest

from bench.harness import ServerProcess
from tests.e2e.people import ALICE, DAVE
from tests.support.mail import (
    header_block,
    imap_session,
    make_message,
    parse_fetch,
    send,
    strip_trace,
)

PORTS = ["starttls", "implicit-tls"]


def deliver_to_dave(server: ServerProcess) -> tuple[str, bytes]:
    subject = f"fetch-{uuid.uuid4().hex[:12]}"
    sent = make_message(ALICE.address, [DAVE.address], subject, "Ordonnance :\nparacétamol.\n")
    send(server, ALICE.address, ALICE.password, [DAVE.address], sent)
    return subject, sent


def select(client: imaplib.IMAP4, readonly: bool = False) -> int:
    typ, data = client.select("INBOX", readonly=readonly)
    assert typ == "OK", data
    return int(data[0])


def fetch_one(client: imaplib.IMAP4, seq: int, items: str) -> tuple[bytes, dict[str, bytes]]:
    typ, data = client.fetch(str(seq), items)
    assert typ == "OK", data
    records = [r for r in parse_fetch(data) if r.seq == seq]
    assert len(records) == 1, data
    return records[0].meta, records[0].literals


def flags_of(meta: bytes) -> set[str]:
    m = re.search(rb"FLAGS \(([^)]*)\)", meta)
    assert m, meta
    return set(m.group(1).decode().split())


def test_plain_port_offers_starttls_and_disables_login(server: ServerProcess) -> None:
    # S: * OK … ready
    # C: a1 CAPABILITY     S: * CAPABILITY IMAP4rev1 … STARTTLS LOGINDISABLED
    # C: a2 STARTTLS       S: a2 OK
    # C: a3 CAPABILITY     S: * CAPABILITY IMAP4rev1 … AUTH=PLAIN          (no LOGINDISABLED)
    client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    try:
        assert "STARTTLS" in client.capabilities
        assert "LOGINDISABLED" in client.capabilities
        client.starttls(ssl_context=server.ssl_context())
        assert "LOGINDISABLED" not in client.capabilities
        assert "AUTH=PLAIN" in client.capabilities
        typ, _ = client.login(DAVE.address, DAVE.password)
        assert typ == "OK"
    finally:
        client.logout()


def test_authenticate_plain(server: ServerProcess) -> None:
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context(), timeout=30
    )
    try:
        token = f"\0{DAVE.address}\0{DAVE.password}".encode()
        typ, _ = client.authenticate("PLAIN", lambda _challenge: token)
        assert typ == "OK"
        typ, listing = client.list()
        assert typ == "OK"
        assert any(re.search(rb'"?INBOX"?$', line) for line in listing if line), listing
    finally:
        client.logout()


@pytest.mark.parametrize("port", PORTS)
def test_fetch_store_expunge(server: ServerProcess, port: str) -> None:
    subject, sent = deliver_to_dave(server)
    client = imap_session(server, DAVE.address, DAVE.password, starttls=port == "starttls")
    try:
        # C: s1 SELECT INBOX   S: * n EXISTS, * OK [UIDVALIDITY v], * OK [UIDNEXT u]
        exists = select(client)
        assert exists >= 1
        uidvalidity = int(client.response("UIDVALIDITY")[1][0])
        uidnext = int(client.response("UIDNEXT")[1][0])
        assert uidvalidity > 0

        # C: f1 FETCH n (FLAGS UID RFC822.SIZE INTERNALDATE)
        meta, _ = fetch_one(client, exists, "(FLAGS UID RFC822.SIZE INTERNALDATE)")
        assert "\\Seen" not in flags_of(meta)
        uid = int(re.search(rb"UID (\d+)", meta).group(1))  # type: ignore[union-attr]
        assert 0 < uid < uidnext
        size = int(re.search(rb"RFC822\.SIZE (\d+)", meta).group(1))  # type: ignore[union-attr]
        internal = imaplib.Internaldate2tuple(meta)
        assert internal is not None, meta
        assert abs(time.mktime(internal) - time.time()) < 300

        # C: f2 FETCH n (BODY.PEEK[HEADER] BODY.PEEK[TEXT])  -- PEEK: \Seen not set
        _, parts = fetch_one(client, exists, "(BODY.PEEK[HEADER])")
        header = parts["BODY[HEADER]"]
        _, parts = fetch_one(client, exists, "(BODY.PEEK[TEXT])")
        text = parts["BODY[TEXT]"]
        meta, _ = fetch_one(client, exists, "(FLAGS)")
        assert "\\Seen" not in flags_of(meta)

        # C: f3 FETCH n (BODY[])  -- the message as stored, and now \Seen
        meta, parts = fetch_one(client, exists, "(BODY[])")
        full = parts["BODY[]"]
        assert strip_trace(full) == sent
        assert f"Subject: {subject}\r\n".encode() in header
        assert header == header_block(full)
        assert header + text == full
        assert size == len(full)
        if b"FLAGS" not in meta:
            meta, _ = fetch_one(client, exists, "(FLAGS)")
        assert "\\Seen" in flags_of(meta)

        # C: f4 UID FETCH uid (BODY.PEEK[])
        typ, data = client.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert typ == "OK"
        [record] = parse_fetch(data)
        assert record.literal == full

        # C: f5 STORE n +FLAGS (\Deleted)   S: * n FETCH (FLAGS (\Seen \Deleted))
        typ, data = client.store(str(exists), "+FLAGS", "(\\Deleted)")
        assert typ == "OK", data
        assert "\\Deleted" in flags_of(data[0])
        # C: f6 EXPUNGE                      S: * n EXPUNGE
        typ, data = client.expunge()
        assert typ == "OK"
        assert data == [str(exists).encode()], data
        typ, data = client.uid("FETCH", str(uid), "(FLAGS)")
        assert typ == "OK" and data in ([None], []), data
    finally:
        client.logout()

    # Another session sees the mailbox one message shorter.
    client = imap_session(server, DAVE.address, DAVE.password)
    try:
        assert select(client, readonly=True) == exists - 1
    finally:
        client.logout()


def test_examine_does_not_set_seen(server: ServerProcess) -> None:
    deliver_to_dave(server)
    client = imap_session(server, DAVE.address, DAVE.password)
    try:
        exists = select(client, readonly=True)  # C: e1 EXAMINE INBOX
        meta, parts = fetch_one(client, exists, "(BODY[])")
        assert parts["BODY[]"]
        meta, _ = fetch_one(client, exists, "(FLAGS)")
        assert "\\Seen" not in flags_of(meta)
    finally:
        client.logout()


async def test_aioimaplib_fetch(server: ServerProcess) -> None:
    _, sent = deliver_to_dave(server)
    client = aioimaplib.IMAP4_SSL(
        "127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context(), timeout=30
    )
    await client.wait_hello_from_server()
    response = await client.login(DAVE.address, DAVE.password)
    assert response.result == "OK", response
    response = await client.select("INBOX")
    assert response.result == "OK", response
    exists = next(int(line.split()[0]) for line in response.lines if line.endswith(b"EXISTS"))
    response = await client.fetch(str(exists), "(UID BODY.PEEK[])")
    assert response.result == "OK", response
    literals = [line for line in response.lines if isinstance(line, bytearray)]
    assert len(literals) == 1, response.lines
    assert strip_trace(bytes(literals[0])) == sent
    await client.logout()
