"""UNAUTHENTICATE (RFC 8437): back to the not authenticated state on the same TLS
connection, nothing of the first login left behind."""

from __future__ import annotations

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script
from tests.imap_server.servers import PreparedServer


def test_back_to_not_authenticated_then_another_login(
    connect: Connect, server: PreparedServer
) -> None:
    first, second = server.account(), server.account()
    tc: Script = connect("tc").open(first.address, first.password)
    tc.C("a1 CAPABILITY")
    tc.S("* CAPABILITY {:.*UNAUTHENTICATE.*}", "a1 OK …")
    tc.C("a2 ENABLE CONDSTORE")
    tc.S("* ENABLED CONDSTORE", "a2 OK …")
    tc.append("INBOX", b"From: a@hygie.test\r\nSubject: first account\r\n\r\nhello\r\n")
    tc.C("a3 SELECT INBOX")
    tc.S("* 1 EXISTS", "a3 OK [READ-WRITE] …")
    # RFC 8437 §2: valid in the selected state; the mailbox is closed, not expunged.
    tc.C("a4 UNAUTHENTICATE")
    tc.S("a4 OK …")
    tc.C("a5 SELECT INBOX")
    tc.S("a5 BAD …")
    tc.C("a6 CAPABILITY")
    tc.S("* CAPABILITY {caps:.*}", "a6 OK …")
    assert "AUTH=PLAIN" in tc.vars["caps"].split()
    # Another user on the same connection sees only their own mailbox, and CONDSTORE is
    # no longer on (no HIGHESTMODSEQ on SELECT).
    tc.login(second.address, second.password, tag="L2")
    tc.C("a7 SELECT INBOX")
    tc.S("* 0 EXISTS", "a7 OK [READ-WRITE] …", absent=["* OK [HIGHESTMODSEQ {:.*}"])


def test_not_before_login(connect: Connect) -> None:
    tc = connect("tc")
    tc.greeting()
    tc.C("a1 UNAUTHENTICATE")
    tc.S("a1 BAD …")
