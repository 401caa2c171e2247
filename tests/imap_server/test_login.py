"""LOGIN (RFC 9051 §6.2.3): quoted strings, literals, wrong credentials, wrong state."""

from __future__ import annotations

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script
from tests.imap_server.servers import Account


def opened(connect: Connect) -> Script:
    tc = connect()
    tc.S("* OK …")
    return tc


def test_quoted_strings(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    tc.C(f'a1 LOGIN "{account.address}" "{account.password}"')
    tc.S("a1 OK …")
    tc.C("a2 SELECT INBOX")
    tc.S("a2 OK [READ-WRITE] …")


def test_atoms(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    tc.C(f"a1 LOGIN {account.address} {account.password}")
    tc.S("a1 OK …")


def test_password_as_a_literal(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    tc.C(f'a1 LOGIN "{account.address}" {{{len(account.password)}}}')
    tc.S("+ …")
    tc.C(account.password)
    tc.S("a1 OK …")


def test_password_as_a_non_synchronizing_literal(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    tc.C(f'a1 LOGIN "{account.address}" {{{len(account.password)}+}}\r\n{account.password}')
    tc.S("a1 OK …")


def test_wrong_password_then_right_one(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    tc.C(f'a1 LOGIN "{account.address}" "wrong-password"')
    tc.S("a1 NO …")
    tc.C("a2 SELECT INBOX")
    tc.S("a2 BAD …")
    tc.C(f'a3 LOGIN "{account.address}" "{account.password}"')
    tc.S("a3 OK …")


def test_unknown_user_answers_like_a_wrong_password(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    tc.C(f'a1 LOGIN "{account.address}" "wrong-password"')
    tc.S("a1 NO {wrong:.*}")
    tc.C('a2 LOGIN "nobody@hygie.test" "wrong-password"')
    # Same answer: the server does not tell which addresses exist.
    tc.S("a2 NO {wrong}")


def test_missing_password_is_bad(connect: Connect, account: Account) -> None:
    tc = opened(connect)
    tc.C(f'a1 LOGIN "{account.address}"')
    tc.S("a1 BAD …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")


def test_not_once_logged_in(tc: Script, account: Account) -> None:
    tc.C(f'a1 LOGIN "{account.address}" "{account.password}"')
    tc.S("a1 BAD …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")
