"""AUTHENTICATE PLAIN (RFC 9051 §6.2.2, RFC 4616), with and without an initial response
(SASL-IR, RFC 4959), and cancelled by the client with ``*``."""

from __future__ import annotations

import base64

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script
from tests.imap_server.servers import Account


def plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def opened(connect: Connect) -> Script:
    tc = connect()
    tc.S("* OK …")
    return tc


def test_with_initial_response(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    tc.C(f"a1 AUTHENTICATE PLAIN {plain(account.address, account.password)}")
    tc.S("a1 OK …")
    tc.C("a2 SELECT INBOX")
    tc.S("a2 OK [READ-WRITE] …")


def test_without_initial_response(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    tc.C("a1 AUTHENTICATE PLAIN")
    tc.S("+…")  # an empty challenge: "+ " (RFC 9051 §7.5)
    tc.C(plain(account.address, account.password))
    tc.S("a1 OK …")
    tc.C("a2 SELECT INBOX")
    tc.S("a2 OK [READ-WRITE] …")


def test_cancelled_with_a_star(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    tc.C("a1 AUTHENTICATE PLAIN")
    tc.S("+…")
    tc.C("*")
    tc.S("a1 BAD …")
    # Still not authenticated, and the session goes on.
    tc.C("a2 SELECT INBOX")
    tc.S("a2 BAD …")
    tc.C(f"a3 AUTHENTICATE PLAIN {plain(account.address, account.password)}")
    tc.S("a3 OK …")


def test_invalid_base64_is_bad(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    tc.C("a1 AUTHENTICATE PLAIN")
    tc.S("+…")
    tc.C("this is not base64!")
    tc.S("a1 BAD …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")


def test_wrong_password(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    tc.C(f"a1 AUTHENTICATE PLAIN {plain(account.address, 'not-the-password')}")
    tc.S("a1 NO …")
    tc.C("a2 SELECT INBOX")
    tc.S("a2 BAD …")


def test_empty_initial_response_then_credentials(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    # RFC 4959 §3: "=" is an empty initial response; PLAIN needs credentials, so it fails
    # (or the server asks again); either way nobody is logged in.
    tc.C("a1 AUTHENTICATE PLAIN =")
    reply = tc.S("{:a1 (NO|BAD) .*|\\+.*}")
    if reply.lines[-1].startswith("+"):
        tc.C("*")
        tc.S("a1 BAD …")
    tc.C("a2 SELECT INBOX")
    tc.S("a2 BAD …")


def test_authorization_identity_of_someone_else_is_refused(
    connect: Connect, account: Account
) -> None:
    tc = opened(connect)
    token = plain(account.address, account.password, authzid="postmaster@hygie.test")
    tc.C(f"a1 AUTHENTICATE PLAIN {token}")
    tc.S("a1 NO …")


def test_own_authorization_identity_is_accepted(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    token = plain(account.address, account.password, authzid=account.address)
    tc.C(f"a1 AUTHENTICATE PLAIN {token}")
    tc.S("a1 OK …")


def test_unknown_mechanism(connect: Connect) -> None:
    tc = opened(connect)
    tc.C("a1 AUTHENTICATE X-UNKNOWN-MECH")
    tc.S("a1 NO …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")


def test_not_twice(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    tc.C(f"a1 AUTHENTICATE PLAIN {plain(account.address, account.password)}")
    tc.S("a1 OK …")
    tc.C(f"a2 AUTHENTICATE PLAIN {plain(account.address, account.password)}")
    tc.S("a2 BAD …")
