"""Bad input gets the right reply and never creates a message: SMTP before TLS, bad
credentials, bad recipients, over-size, over-long lines, SMTP smuggling; IMAP syntax errors.

Every test here writes to frank's mailbox, and checks his INBOX count did not move (or moved
by exactly the one legitimate message)."""

from __future__ import annotations

import base64
import imaplib
from collections.abc import Iterator

import pytest

from bench.harness import ServerProcess
from tests.e2e.people import ALICE, FRANK
from tests.support.dialogue import ImapDialogue, SmtpDialogue
from tests.support.mail import find_by_subject, inbox_count, inbox_messages, strip_trace
from tests.support.servers import MAX_MESSAGE_SIZE


def frank_count(server: ServerProcess) -> int:
    return inbox_count(server, FRANK.address, FRANK.password)


@pytest.fixture
def unchanged(server: ServerProcess) -> Iterator[None]:
    """The test must leave frank's INBOX as it found it."""
    before = frank_count(server)
    yield
    assert frank_count(server) == before, "bad input created a message"


@pytest.fixture
def tc(server: ServerProcess) -> Iterator[SmtpDialogue]:
    """A submission session on 2587, still in plaintext."""
    dialogue = SmtpDialogue.connect(server.smtp_port)
    yield dialogue
    dialogue.close()


@pytest.fixture
def tls(server: ServerProcess, tc: SmtpDialogue) -> SmtpDialogue:
    """A submission session on 2587 after STARTTLS and AUTH PLAIN as alice."""
    tc.greet_and_tls(server.ssl_context())
    assert tc.auth_plain(ALICE.address, ALICE.password).code == 235
    return tc


def plain_token(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


# -- before TLS (RFC 3207 §4; RFC 4954 §4)


def test_auth_before_starttls_is_refused(tc: SmtpDialogue, unchanged: None) -> None:
    tc.S("220")
    tc.C("EHLO client.test")
    tc.S("250")
    tc.C(f"AUTH PLAIN {plain_token(ALICE.address, ALICE.password)}")
    reply = tc.reply()
    assert reply.code in (530, 538), reply  # 530 5.7.0 Must issue a STARTTLS command first
    tc.C("AUTH LOGIN")
    assert tc.reply().code in (530, 538)


def test_mail_before_starttls_is_refused(tc: SmtpDialogue, unchanged: None) -> None:
    tc.S("220")
    tc.C("EHLO client.test")
    tc.S("250")
    tc.C(f"MAIL FROM:<{ALICE.address}>")
    tc.S("530 5.7.0")
    tc.C(f"RCPT TO:<{FRANK.address}>")
    assert tc.reply().code >= 500  # no transaction was started
    tc.C("DATA")
    assert tc.reply().code >= 500
    tc.C("QUIT")
    tc.S("221")


def test_mail_after_tls_without_auth_is_refused(
    server: ServerProcess, tc: SmtpDialogue, unchanged: None
) -> None:
    tc.greet_and_tls(server.ssl_context())
    tc.C(f"MAIL FROM:<{ALICE.address}>")
    tc.S("530 5.7.0")  # RFC 4954 §6: authentication required


# -- credentials and recipients


def test_wrong_password(server: ServerProcess, tc: SmtpDialogue, unchanged: None) -> None:
    tc.greet_and_tls(server.ssl_context())
    tc.C(f"AUTH PLAIN {plain_token(ALICE.address, 'not-the-password')}")
    tc.S("535 5.7.8")
    tc.C(f"AUTH PLAIN {plain_token('nobody@hygie.test', 'whatever')}")
    tc.S("535 5.7.8")  # same answer: no user enumeration
    tc.C(f"MAIL FROM:<{ALICE.address}>")
    tc.S("530")


def test_unknown_local_recipient(tls: SmtpDialogue, unchanged: None) -> None:
    tls.C(f"MAIL FROM:<{ALICE.address}>")
    tls.S("250")
    tls.C("RCPT TO:<no-such-user@hygie.test>")
    tls.S("550 5.1.1")
    tls.C("DATA")
    assert tls.reply().code in (503, 554)  # no valid recipient


def test_relay_attempt(tls: SmtpDialogue, unchanged: None) -> None:
    tls.C(f"MAIL FROM:<{ALICE.address}>")
    tls.S("250")
    tls.C("RCPT TO:<victim@example.com>")
    tls.S("554 5.7.1")
    tls.C("RSET")
    tls.S("250")


# -- size and line length (RFC 1870; RFC 5321 §4.5.3.1.6)


def test_oversize_declared_in_mail_from(tls: SmtpDialogue, unchanged: None) -> None:
    tls.C(f"MAIL FROM:<{ALICE.address}> SIZE={MAX_MESSAGE_SIZE + 1}")
    tls.S("552 5.3.4")
    tls.C(f"MAIL FROM:<{ALICE.address}> SIZE={MAX_MESSAGE_SIZE // 2}")
    tls.S("250")


def test_oversize_sent_anyway(tls: SmtpDialogue, unchanged: None) -> None:
    tls.C(f"MAIL FROM:<{ALICE.address}>")
    tls.S("250")
    tls.C(f"RCPT TO:<{FRANK.address}>")
    tls.S("250")
    tls.C("DATA")
    tls.S("354")
    header = f"From: <{ALICE.address}>\r\nTo: <{FRANK.address}>\r\nSubject: too big\r\n\r\n"
    line = b"x" * 998 + b"\r\n"
    body = line * (MAX_MESSAGE_SIZE // len(line) + 1024)
    try:
        tls.send_raw(header.encode() + body + b".\r\n")
    except OSError:
        pass  # the server may answer 552 and close before reading it all (RFC 5321 §4.2.5)
    tls.S("552 5.3.4")


def test_line_over_1000_bytes(tls: SmtpDialogue, unchanged: None) -> None:
    tls.C(f"MAIL FROM:<{ALICE.address}>")
    tls.S("250")
    tls.C(f"RCPT TO:<{FRANK.address}>")
    tls.S("250")
    tls.C("DATA")
    tls.S("354")
    tls.send_raw(b"Subject: long line\r\n\r\n" + b"y" * 1500 + b"\r\nend\r\n.\r\n")
    reply = tls.reply()
    assert 500 <= reply.code < 600, reply  # 500 5.5.2 or 552 per RFC 5321 §4.5.3.1.6


def test_command_line_over_512_bytes(tls: SmtpDialogue, unchanged: None) -> None:
    tls.C(f"MAIL FROM:<{'a' * 1200}@hygie.test>")
    reply = tls.reply()
    assert 500 <= reply.code < 600, reply
    tls.C("NOOP")
    tls.S("250")


# -- SMTP smuggling (CVE-2023-51764 and friends)

SMUGGLING = {
    "LF.LF": b"\n.\n",
    "CRLF.LF": b"\r\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CR.CRLF": b"\r.\r\n",
}


@pytest.mark.parametrize("ending", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_smuggled_end_of_data_does_not_end_data(
    server: ServerProcess, tls: SmtpDialogue, ending: bytes
) -> None:
    # C: DATA                                  S: 354
    # C: Subject: outer … <ending>MAIL FROM… RCPT TO… DATA… Subject: smuggled … <CRLF>.<CRLF>
    # S: 250 (one message) or 5xx (rejected); never a reply per smuggled command
    before = frank_count(server)
    outer = f"outer-{ending.hex()}"
    smuggled = f"smuggled-{ending.hex()}"
    tls.C(f"MAIL FROM:<{ALICE.address}>")
    tls.S("250")
    tls.C(f"RCPT TO:<{FRANK.address}>")
    tls.S("250")
    tls.C("DATA")
    tls.S("354")
    tls.send_raw(
        f"From: <{ALICE.address}>\r\nTo: <{FRANK.address}>\r\nSubject: {outer}\r\n\r\n"
        "first part\r\n".encode()
        + ending
        + f"MAIL FROM:<{ALICE.address}>\r\nRCPT TO:<{FRANK.address}>\r\nDATA\r\n"
        f"From: <{ALICE.address}>\r\nTo: <{FRANK.address}>\r\nSubject: {smuggled}\r\n\r\n"
        "evil\r\n.\r\n".encode()
    )
    end = tls.reply()
    assert end.code == 250 or 500 <= end.code < 600, end
    tls.C("QUIT")
    tls.S("221")  # not the 250/354 of a smuggled MAIL/RCPT/DATA

    messages = inbox_messages(server, FRANK.address, FRANK.password)
    assert len(messages) == before + (1 if end.code == 250 else 0)
    assert find_by_subject(messages, smuggled) == []
    if end.code == 250:
        [stored] = find_by_subject(messages, outer)
        assert f"Subject: {smuggled}".encode() in strip_trace(stored)  # still inside the body


# -- IMAP


@pytest.fixture
def imap(server: ServerProcess) -> Iterator[ImapDialogue]:
    """An IMAP session on 2993 (implicit TLS), logged in as frank."""
    tc = ImapDialogue.connect(server.imap_tls_port, server.ssl_context())
    tc.S("* OK")
    tc.C(f'a0 LOGIN "{FRANK.address}" "{FRANK.password}"')
    tc.S("a0 OK")
    yield tc
    tc.close()


def test_imap_malformed_literal_then_session_goes_on(imap: ImapDialogue) -> None:
    imap.C("a1 SELECT {5x}")
    imap.S("a1 BAD")
    imap.C("a2 SELECT {}")
    imap.S("a2 BAD")
    imap.C("a3 NOOP")
    imap.S("a3 OK")
    imap.C("a4 SELECT INBOX")
    imap.S("a4 OK")


def test_imap_unknown_command_then_session_goes_on(imap: ImapDialogue) -> None:
    imap.C("b1 FROBNICATE INBOX")
    imap.S("b1 BAD")
    imap.C("b2 SELECT INBOX")
    imap.S("b2 OK")
    imap.C("b3 FETCH 1:* (FROB)")
    imap.S("b3 BAD")
    imap.C("b4 NOOP")
    imap.S("b4 OK")


def test_imap_missing_command_and_extra_arguments(imap: ImapDialogue) -> None:
    imap.C("c1")
    bad = imap.line()  # the tag alone: tagged BAD, or untagged if the tag is not taken as one
    assert bad.startswith((b"c1 BAD", b"* BAD")), bad
    imap.C("c2 NOOP unexpected-argument")
    imap.S("c2 BAD")
    imap.C("c3 NOOP")
    imap.S("c3 OK")


def test_imap_login_before_starttls_is_refused(server: ServerProcess) -> None:
    # S: * OK … ;  C: a1 CAPABILITY  S: * CAPABILITY … LOGINDISABLED ;  C: a2 LOGIN …  S: a2 NO|BAD
    tc = ImapDialogue.connect(server.imap_port)
    try:
        tc.S("* OK")
        tc.C("a1 CAPABILITY")
        capability = tc.S("* CAPABILITY")
        assert b"LOGINDISABLED" in capability.split()
        assert b"STARTTLS" in capability.split()
        tc.S("a1 OK")
        tc.C(f'a2 LOGIN "{FRANK.address}" "{FRANK.password}"')
        refused = tc.S("a2 ")
        assert refused.split()[1] in (b"NO", b"BAD"), refused
        token = plain_token(FRANK.address, FRANK.password)
        tc.C(f"a3 AUTHENTICATE PLAIN {token}")
        refused = tc.S("a3 ")
        assert refused.split()[1] in (b"NO", b"BAD"), refused
        tc.C("a4 SELECT INBOX")
        refused = tc.S("a4 ")  # still not authenticated
        assert refused.split()[1] in (b"NO", b"BAD"), refused
    finally:
        tc.close()
    # and imaplib, which does not look at LOGINDISABLED, gets an error rather than a session
    client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            client.login(FRANK.address, FRANK.password)
    finally:
        client.shutdown()
