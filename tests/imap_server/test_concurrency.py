"""Two sessions on one mailbox (RFC 9051 §5.2, §7.5.1; issue 3 item 5): each sees the other's
appends, flag changes and expunges, but only where the RFC allows, and message sequence
numbers never move under a session outside those points. In particular no EXPUNGE is sent
during a FETCH, STORE or SEARCH (which are not UID commands)."""

from __future__ import annotations

import socket

import pytest

from tests.imap_server.dialogue import TIMEOUT, Script
from tests.imap_server.messages import text_message
from tests.imap_server.servers import Account, PreparedServer
from tests.support.dialogue import LineSocket


@pytest.fixture
def both(tc: Script, tc2: Script) -> tuple[Script, Script]:
    for subject in ("One", "Two", "Three"):
        tc.append("INBOX", text_message(subject))
    tc.C("s1 SELECT INBOX")
    tc.S("* 3 EXISTS", "s1 OK …")
    tc.C("s2 FETCH 1:3 (UID)")
    tc.S("* 1 FETCH (UID {u1})", "* 2 FETCH (UID {u2})", "* 3 FETCH (UID {u3})", "s2 OK …")
    tc2.C("t1 SELECT INBOX")
    tc2.S("* 3 EXISTS", "t1 OK …")
    return tc, tc2


def expunge_first(tc2: Script) -> None:
    tc2.C("b1 STORE 1 +FLAGS.SILENT (\\Deleted)")
    tc2.S("b1 OK …")
    tc2.C("b2 EXPUNGE")
    tc2.S("* 1 EXPUNGE", "b2 OK …")


def test_no_expunge_during_fetch(both: tuple[Script, Script]) -> None:
    tc, tc2 = both
    expunge_first(tc2)
    tc.C("a1 FETCH 2:3 (UID)")
    # Still numbered as tc knows them: 2 and 3, not 1 and 2.
    tc.S("* 2 FETCH (UID {u2})", "* 3 FETCH (UID {u3})", "a1 OK …", absent=["* {} EXPUNGE"])
    tc.C("a2 NOOP")
    tc.S("* 1 EXPUNGE", "a2 OK …")
    tc.C("a3 FETCH 1:* (UID)")
    tc.S("* 1 FETCH (UID {u2})", "* 2 FETCH (UID {u3})", "a3 OK …")


def test_no_expunge_during_store(both: tuple[Script, Script]) -> None:
    tc, tc2 = both
    expunge_first(tc2)
    tc.C("a1 STORE 3 +FLAGS (\\Flagged)")
    tc.S("* 3 FETCH (FLAGS (\\Flagged))", "a1 OK …", absent=["* {} EXPUNGE"])
    tc.C("a2 NOOP")
    tc.S("* 1 EXPUNGE", "a2 OK …")
    tc.C(f"a3 UID FETCH {tc.vars['u3']} (FLAGS)")
    tc.S("* 2 FETCH (…\\Flagged…)", "a3 OK …")


def test_no_expunge_during_search(both: tuple[Script, Script]) -> None:
    tc, tc2 = both
    expunge_first(tc2)
    tc.C(f"a1 SEARCH UID {tc.vars['u3']}")
    tc.S("* SEARCH 3", "a1 OK …", absent=["* {} EXPUNGE"])
    tc.C("a2 NOOP")
    tc.S("* 1 EXPUNGE", "a2 OK …")
    tc.C(f"a3 SEARCH UID {tc.vars['u3']}")
    tc.S("* SEARCH 2", "a3 OK …")


def test_expunge_may_come_with_a_uid_command(both: tuple[Script, Script]) -> None:
    tc, tc2 = both
    expunge_first(tc2)
    tc.C(f"a1 UID FETCH {tc.vars['u3']} (FLAGS)")
    tc.S("* {:2|3} FETCH (…)", "a1 OK …")
    tc.C("a2 FETCH 1:* (UID)")
    tc.S("* 1 FETCH (UID {u2})", "* 2 FETCH (UID {u3})", "a2 OK …")


def test_appends_and_flags_are_seen_at_noop(both: tuple[Script, Script]) -> None:
    tc, tc2 = both
    tc2.append("INBOX", text_message("Fourth"), tag="b1")
    tc2.C("b2 STORE 2 +FLAGS.SILENT (\\Answered)")
    tc2.S("b2 OK …")
    tc.C("a1 NOOP")
    tc.S("* 4 EXISTS", "* 2 FETCH (FLAGS (\\Answered))", "a1 OK …")
    tc.C("a2 FETCH 4 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    tc.S(
        "* 4 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {:\\{\\d+\\}}\r\nSubject: Fourth\r\n\r\n)",
        "a2 OK …",
    )


def test_both_expunge_the_same_message(both: tuple[Script, Script]) -> None:
    tc, tc2 = both
    tc.C("a1 STORE 2 +FLAGS.SILENT (\\Deleted)")
    tc.S("a1 OK …")
    tc.C("a2 EXPUNGE")
    tc.S("* 2 EXPUNGE", "a2 OK …")
    tc2.vars.update(tc.vars)
    tc2.C("b1 NOOP")
    tc2.S("* 2 EXPUNGE", "b1 OK …")
    tc2.C("b2 FETCH 1:* (UID)")
    tc2.S("* 1 FETCH (UID {u1})", "* 2 FETCH (UID {u3})", "b2 OK …")


def _slow_reader(server: PreparedServer, account: Account) -> Script:
    """A session whose socket takes little at a time (a small receive buffer): a large FETCH
    answer then stays in the server's hands until the client reads it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)  # before connect: no autotune
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", server.imap_tls_port))
    tls = server.ssl_context().wrap_socket(sock, server_hostname="127.0.0.1")
    return Script(LineSocket(tls, timeout=TIMEOUT), "tc").open(account.address, account.password)


def test_fetch_of_a_message_expunged_mid_command(
    server: PreparedServer, account: Account, tc2: Script
) -> None:
    """RFC 9051 §7.1 EXPUNGEISSUED: tc's FETCH of two messages is streaming the first (12 MiB,
    more than every socket buffer between the two can hold) when tc2 expunges the second; tc
    gets the first, then a tagged NO [EXPUNGEISSUED] — not a dropped connection — and the
    EXPUNGE at its next command."""
    big = text_message("Big") + (b"y" * 78 + b"\r\n") * (12 * 2**20 // 80)
    tc2.append("INBOX", big, tag="b1")
    tc2.append("INBOX", text_message("Small"), tag="b2")
    tc = _slow_reader(server, account)
    tc.C("a1 SELECT INBOX")
    tc.S("* 2 EXISTS", "a1 OK …")
    tc2.C("b3 SELECT INBOX")
    tc2.S("* 2 EXISTS", "b3 OK …")
    tc.C("a2 FETCH 1:2 (BODY.PEEK[])")
    # The first line of the answer: both messages were looked up, the first is being sent.
    first = tc.conn.readline()
    assert first == b"* 1 FETCH (BODY[] {%d}" % len(big), first
    tc2.C("b4 STORE 2 +FLAGS.SILENT (\\Deleted)")
    tc2.S("b4 OK …")
    tc2.C("b5 EXPUNGE")
    tc2.S("* 2 EXPUNGE", "b5 OK …")
    assert tc.conn.read_exactly(len(big)) == big
    assert tc.conn.readline() == b")"
    tc.S("a2 NO [EXPUNGEISSUED] …", absent=["* 2 FETCH …"])
    tc.C("a3 NOOP")
    tc.S("* 2 EXPUNGE", "a3 OK …")
    tc.C("a4 FETCH 1 (RFC822.SIZE)")
    tc.S(f"* 1 FETCH (RFC822.SIZE {len(big)})", "a4 OK …")
