"""CAPABILITY (RFC 9051 §6.1.1): what the server says it can do, before and after TLS and login.
The list after login is the one of issue 3 item 3."""

from __future__ import annotations

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script
from tests.imap_server.servers import Account, PreparedServer

AFTER_LOGIN = {
    "IMAP4REV2", "IMAP4REV1", "LITERAL+", "ENABLE", "IDLE", "UIDPLUS", "MOVE", "CONDSTORE",
    "QRESYNC", "SPECIAL-USE", "CREATE-SPECIAL-USE", "NAMESPACE", "UNSELECT", "SASL-IR", "ID",
    "ESEARCH", "SEARCHRES", "STATUS=SIZE", "APPENDLIMIT", "CHILDREN", "LIST-EXTENDED",
    "LIST-STATUS", "BINARY",
}  # fmt: skip


def capabilities(tc: Script) -> set[str]:
    """The names in the last ``{caps}`` captured, upper case, ``APPENDLIMIT=n`` as APPENDLIMIT."""
    names = {c.upper() for c in tc.vars.pop("caps").split()}
    return {"APPENDLIMIT" if n.startswith("APPENDLIMIT=") else n for n in names}


def test_before_login_over_implicit_tls(connect: Connect) -> None:
    tc = connect()
    tc.S("* OK …")
    tc.C("a1 CAPABILITY")
    tc.S("* CAPABILITY {caps:.*}", "a1 OK …")
    caps = capabilities(tc)
    assert {"IMAP4REV2", "IMAP4REV1", "AUTH=PLAIN", "SASL-IR"} <= caps
    # TLS is already on: nothing to start, and login is allowed (RFC 9051 §6.2.1, §6.2.3).
    assert not caps & {"STARTTLS", "LOGINDISABLED"}


def test_plaintext_port_offers_starttls_and_no_login_until_tls(
    connect: Connect, server: PreparedServer
) -> None:
    tc = connect(starttls_port=True)
    tc.S("* OK …")
    tc.C("a1 CAPABILITY")
    tc.S("* CAPABILITY {caps:.*}", "a1 OK …")
    caps = capabilities(tc)
    assert {"IMAP4REV2", "IMAP4REV1", "STARTTLS", "LOGINDISABLED"} <= caps
    assert not any(c.startswith("AUTH=") for c in caps), caps

    tc.C("a2 STARTTLS")
    tc.S("a2 OK …")
    tc.starttls(server)
    tc.C("a3 CAPABILITY")
    tc.S("* CAPABILITY {caps:.*}", "a3 OK …")
    caps = capabilities(tc)
    assert "AUTH=PLAIN" in caps
    assert not caps & {"STARTTLS", "LOGINDISABLED"}


def test_after_login_every_extension_of_issue_3(connect: Connect, account: Account) -> None:
    tc = connect()
    tc.S("* OK …")
    tc.C(f'a1 LOGIN "{account.address}" "{account.password}"')
    tc.S("a1 OK …")
    tc.C("a2 CAPABILITY")
    tc.S("* CAPABILITY {caps:.*}", "a2 OK …")
    caps = capabilities(tc)
    assert AFTER_LOGIN <= caps, f"missing: {sorted(AFTER_LOGIN - caps)}"
    assert not caps & {"STARTTLS", "LOGINDISABLED"}


def test_login_ok_may_carry_capabilities_but_then_the_new_ones(
    connect: Connect, account: Account
) -> None:
    tc = connect()
    tc.S("* OK …")
    tc.C(f'a1 LOGIN "{account.address}" "{account.password}"')
    reply = tc.S("a1 OK …")
    # RFC 9051 §6.2.3: a CAPABILITY code in the OK must be the post-login list.
    ok = reply.lines[-1]
    if ok.startswith("a1 OK [CAPABILITY "):
        tc.vars["caps"] = ok[len("a1 OK [CAPABILITY ") : ok.index("]")]
        assert AFTER_LOGIN <= capabilities(tc)


def test_in_selected_state(tc: Script) -> None:
    tc.C("a1 SELECT INBOX")
    tc.S("a1 OK [READ-WRITE] …")
    tc.C("a2 CAPABILITY")
    tc.S("* CAPABILITY {caps:.*}", "a2 OK …")
    assert AFTER_LOGIN <= capabilities(tc)


def test_arguments_are_a_syntax_error(tc: Script) -> None:
    tc.C("a1 CAPABILITY please")
    tc.S("a1 BAD …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")
