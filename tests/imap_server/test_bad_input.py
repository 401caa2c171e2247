"""Bad input (issue 3 item 8, RFC 9051 §7.1.3): every malformed command gets a tagged BAD with
a helpful text and the session goes on; an endless line or an oversize literal is answered
and disconnected without harm to other sessions; idle clients are logged out.

This module's server has a 2-second login timeout (HYGIE_IMAP_LOGIN_TIMEOUT_SECONDS) and a
1 MiB literal limit (HYGIE_IMAP_MAX_LITERAL_SIZE)."""

from __future__ import annotations

import time

import pytest

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script

LOGIN_TIMEOUT = 2
MAX_LITERAL = 1024 * 1024
SERVER_ENV = {
    "HYGIE_IMAP_LOGIN_TIMEOUT_SECONDS": str(LOGIN_TIMEOUT),
    "HYGIE_IMAP_MAX_LITERAL_SIZE": str(MAX_LITERAL),
}

MALFORMED = [
    "a1 NOSUCHCOMMAND",
    "a1 FETCH",
    "a1 FETCH 1 (FLAGS",
    "a1 FETCH x:y (FLAGS)",
    "a1 FETCH 1 (BODY[1.2.3.MIME.TEXT])",
    "a1 FETCH 99999999999999999999 (FLAGS)",
    "a1 FETCH 1 ((((((((((((((((((((((((((((((((FLAGS))))))))))))))))))))))))))))))))",
    "a1 STORE 1 +FLAGS",
    "a1 SEARCH OR SEEN",
    "a1 SEARCH (SEEN",
    "a1 UID FROB 1",
    'a1 LIST "unterminated',
    "a1 SELECT INBOX extra (",
    "a1 SELECT INBOX\x00",
    "a1 APPEND INBOX {abc}",
    "a1 EXPUNGE now",
    "a1 LOGIN someone password",
]


@pytest.mark.parametrize("line", MALFORMED)
def test_malformed_command_gets_bad_and_the_session_goes_on(selected: Script, line: str) -> None:
    tc = selected
    tc.C(line)
    tc.S("a1 BAD {text:.+}")
    assert len(tc.vars.pop("text").strip()) >= 5, "BAD needs a helpful text"
    tc.C("a2 NOOP")
    tc.S("a2 OK …")


def test_untagged_garbage_gets_an_untagged_bad(selected: Script) -> None:
    tc = selected
    tc.send(b"(((\r\n")
    tc.S("{:\\*|\\(\\(\\(} BAD …")
    tc.send(b"\xff\xfe\x00\x01\r\n")
    tc.S("{:.*} BAD …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")


def test_endless_line_is_answered_and_disconnected(
    connect: Connect, selected: Script, account_pair: tuple[str, str]
) -> None:
    other = selected
    tc = connect("tc_flood")
    tc.S("* OK …")
    try:
        tc.send(b"a1 NOOP " + b"x" * (80 * 1024))
        tc.send(b"y" * (16 * 1024))
    except OSError:
        pass  # the server may already have hung up
    tc.S("{:\\*|a1} BAD …")
    assert tc.closed(), "the server must hang up on an endless line"
    # Other sessions are unharmed, and new ones are welcome.
    other.C("a2 NOOP")
    other.S("a2 OK …")
    fresh = connect("tc_fresh").open(*account_pair)
    fresh.C("c1 NOOP")
    fresh.S("c1 OK …")


def test_oversize_non_synchronizing_literal(
    connect: Connect, selected: Script, account_pair: tuple[str, str]
) -> None:
    other = selected
    tc = connect("tc_big").open(*account_pair)
    tc.C(f"a1 APPEND INBOX {{{MAX_LITERAL * 2}+}}")
    try:
        tc.send(b"x" * (64 * 1024))
    except OSError:
        pass
    tc.S("a1 {:BAD|NO} …")
    assert tc.closed(), "after an oversize non-synchronizing literal the server must hang up"
    other.C("a2 STATUS INBOX (MESSAGES)")
    other.S("* STATUS INBOX (MESSAGES 0)", "a2 OK …")


def test_oversize_synchronizing_literal_is_refused_before_it_is_sent(selected: Script) -> None:
    tc = selected
    tc.C(f"a1 APPEND INBOX {{{MAX_LITERAL * 2}}}")
    tc.S("a1 {:BAD|NO} …", absent=["+ …"])


def test_idle_client_is_logged_out_before_login(connect: Connect) -> None:
    tc = connect()
    tc.S("* OK …")
    started = time.monotonic()
    tc.S("* BYE …", timeout=LOGIN_TIMEOUT + 5)
    assert tc.closed()
    assert time.monotonic() - started >= LOGIN_TIMEOUT - 0.5


def test_logged_in_client_gets_the_longer_timeout(selected: Script) -> None:
    tc = selected
    time.sleep(LOGIN_TIMEOUT + 1)
    tc.C("a1 NOOP")
    tc.S("a1 OK …")


@pytest.fixture
def account_pair(account: object) -> tuple[str, str]:
    return account.address, account.password  # type: ignore[attr-defined]


@pytest.fixture
def selected(tc: Script) -> Script:
    tc.C("s1 SELECT INBOX")
    tc.S("s1 OK …")
    return tc
