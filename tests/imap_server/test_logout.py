"""LOGOUT (RFC 9051 §6.1.3): untagged BYE, then the tagged OK, then the server closes."""

from __future__ import annotations

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script


def test_before_login(connect: Connect) -> None:
    tc = connect()
    tc.S("* OK …")
    tc.C("a1 LOGOUT")
    tc.S("* BYE …", "a1 OK …", ordered=True)
    assert tc.closed()


def test_with_a_mailbox_selected(tc: Script) -> None:
    tc.C("a1 SELECT INBOX")
    tc.S("a1 OK [READ-WRITE] …")
    tc.C("a2 LOGOUT")
    tc.S("* BYE …", "a2 OK …", ordered=True)
    assert tc.closed()


def test_on_the_plaintext_port(connect: Connect) -> None:
    tc = connect(starttls_port=True)
    tc.S("* OK …")
    tc.C("a1 LOGOUT")
    tc.S("* BYE …", "a1 OK …", ordered=True)
    assert tc.closed()


def test_commands_after_logout_in_the_same_packet_are_not_run(connect: Connect) -> None:
    tc = connect()
    tc.S("* OK …")
    tc.send(b"a1 LOGOUT\r\na2 NOOP\r\n")
    tc.S("* BYE …", "a1 OK …", ordered=True)
    assert tc.closed()
    assert not any(line.startswith("tc S: 'a2") for line in tc.transcript)
