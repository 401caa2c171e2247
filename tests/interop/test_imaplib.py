"""Python's ``imaplib`` (an IMAP4rev1 client) through a mailbox's life: append, select,
search, fetch, store, copy, expunge; over implicit TLS and over STARTTLS."""

from __future__ import annotations

import imaplib
import re

from tests.imap_server.messages import REPORT, REPORT_PDF, text_message
from tests.imap_server.servers import Account, PreparedServer
from tests.interop.conftest import TIMEOUT, imap


def test_a_mailbox_life(server: PreparedServer, account: Account) -> None:
    client = imap(server, account)
    try:
        hello = text_message("Hello from imaplib")
        typ, data = client.append("INBOX", "(\\Seen)", None, hello)
        assert typ == "OK" and b"APPENDUID" in data[0], data
        assert client.append("INBOX", "", None, REPORT)[0] == "OK"

        typ, data = client.select("INBOX")
        assert (typ, data) == ("OK", [b"2"])
        typ, data = client.search(None, "UNSEEN")
        assert (typ, data) == ("OK", [b"2"])

        typ, data = client.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == hello  # type: ignore[index]
        typ, data = client.fetch("2", "(BODYSTRUCTURE)")
        assert typ == "OK" and b'"compte-rendu.pdf"' in data[0], data

        typ, data = client.fetch("2", "(BINARY.PEEK[2])")
        assert typ == "OK" and data[0][1] == REPORT_PDF  # type: ignore[index]

        typ, data = client.store("2", "+FLAGS", "(\\Flagged)")
        assert typ == "OK" and b"\\Flagged" in data[0], data
        typ, data = client.copy("2", "Archive")
        assert typ == "OK", data

        typ, data = client.store("1", "+FLAGS.SILENT", "(\\Deleted)")
        assert typ == "OK"
        typ, data = client.expunge()
        assert (typ, data) == ("OK", [b"1"])
        typ, data = client.status("Archive", "(MESSAGES)")
        assert typ == "OK" and re.search(rb"MESSAGES 1\b", data[0]), data
    finally:
        client.logout()


def test_starttls_then_login(server: PreparedServer, account: Account) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=TIMEOUT)
    try:
        assert "STARTTLS" in client.capabilities
        assert "LOGINDISABLED" in client.capabilities
        client.starttls(ssl_context=server.ssl_context())
        assert "AUTH=PLAIN" in client.capabilities
        typ, _ = client.login(account.address, account.password)
        assert typ == "OK"
        typ, data = client.list()
        names = {line.rsplit(b" ", 1)[-1].strip(b'"') for line in data if isinstance(line, bytes)}
        assert {b"INBOX", b"Sent", b"Drafts", b"Trash", b"Archive"} <= names
    finally:
        client.logout()


def test_authenticate_plain(server: PreparedServer, account: Account) -> None:
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context(), timeout=TIMEOUT
    )
    try:
        typ, _ = client.authenticate(
            "PLAIN", lambda _: f"\0{account.address}\0{account.password}".encode()
        )
        assert typ == "OK"
        assert client.select("Sent")[0] == "OK"
    finally:
        client.logout()


def test_wrong_password_is_an_error(server: PreparedServer, account: Account) -> None:
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context(), timeout=TIMEOUT
    )
    try:
        try:
            client.login(account.address, "wrong-password")
        except imaplib.IMAP4.error:
            pass
        else:
            raise AssertionError("a wrong password was accepted")
    finally:
        client.shutdown()
