"""STARTTLS on the plaintext port (RFC 9051 §6.2.1, §11.1; RFC 8314): no credentials before
TLS, and nothing the client sent before the handshake is acted upon after it."""

from __future__ import annotations

import base64

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script
from tests.imap_server.servers import Account, PreparedServer


def test_login_after_starttls(connect: Connect, server: PreparedServer, account: Account) -> None:
    tc = connect(starttls_port=True)
    tc.S("* OK …")
    tc.C("a1 STARTTLS")
    tc.S("a1 OK …")
    tc.starttls(server)
    tc.C(f'a2 LOGIN "{account.address}" "{account.password}"')
    tc.S("a2 OK …")
    tc.C("a3 SELECT INBOX")
    tc.S("a3 OK [READ-WRITE] …")


def test_no_login_before_tls(connect: Connect, account: Account) -> None:
    tc = connect(starttls_port=True)
    tc.S("* OK …")
    # LOGINDISABLED (RFC 9051 §6.2.3): a tagged NO, and the password was not even checked.
    tc.C(f'a1 LOGIN "{account.address}" "{account.password}"')
    tc.S("a1 NO …")
    token = base64.b64encode(f"\0{account.address}\0{account.password}".encode()).decode()
    tc.C(f"a2 AUTHENTICATE PLAIN {token}")
    tc.S("a2 NO …")
    tc.C("a3 SELECT INBOX")
    tc.S("a3 BAD …")


def test_commands_pipelined_before_the_handshake_are_discarded(
    connect: Connect, server: PreparedServer
) -> None:
    tc = connect(starttls_port=True)
    tc.S("* OK …")
    # The classic injection (CVE-2011-0411 in SMTP; RFC 9051 §11.1 for IMAP).
    tc.send(b"a1 STARTTLS\r\na2 CAPABILITY\r\n")
    tc.S("a1 OK …")
    tc.starttls(server)
    tc.C("a3 NOOP")
    tc.S("a3 OK …", absent=["a2 …", "* CAPABILITY …"])


def test_not_twice(connect: Connect, server: PreparedServer) -> None:
    tc = connect(starttls_port=True)
    tc.S("* OK …")
    tc.C("a1 STARTTLS")
    tc.S("a1 OK …")
    tc.starttls(server)
    tc.C("a2 STARTTLS")
    tc.S("a2 {:BAD|NO} …")
    tc.C("a3 NOOP")
    tc.S("a3 OK …")


def test_not_on_the_implicit_tls_port(connect: Connect) -> None:
    tc = connect()
    tc.S("* OK …")
    tc.C("a1 STARTTLS")
    tc.S("a1 {:BAD|NO} …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")


def test_not_after_login(tc: Script) -> None:
    tc.C("a1 STARTTLS")
    tc.S("a1 BAD …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")
