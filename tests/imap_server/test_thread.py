"""THREAD and UID THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES, the response written
as RFC 5256 §4 shows it (``(3 6 (4 23)(44 7 96))``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import crlf
from tests.imap_server.servers import PreparedServer


def message(n: int, ident: str, subject: str, links: str = "") -> bytes:
    return crlf(
        f"From: alice@hygie.test\nSubject: {subject}\n"
        f"Date: Mon, 17 Nov 2025 09:{n:02d}:00 +0000\nMessage-ID: <{ident}@t>\n"
        f"{links}\nbody {n}\n"
    )


MESSAGES = [
    message(1, "a", "Plan"),
    message(2, "b", "Re: Plan", "References: <a@t>\n"),
    message(3, "c", "Other"),
    # A References field names the whole chain (RFC 5322 §3.6.4).
    message(4, "d", "Re: Plan", "References: <a@t> <b@t>\n"),
    # No References: the first message identifier of In-Reply-To is the parent.
    message(5, "e", "Re: Plan", "In-Reply-To: <a@t> <zzz@t>\n"),
    # Replies to a message not in the mailbox: siblings under a dummy that is not shown.
    message(6, "f", "Lost", "References: <gone@t>\n"),
    message(7, "g", "Re: Lost", "References: <gone@t>\n"),
    # No link at all, but a reply to "Other" by its subject (§3 step 5).
    message(8, "h", "Re: Other"),
]


@pytest.fixture(scope="module")
def mailbox(server: PreparedServer) -> Iterator[Script]:
    account = server.account()
    tc = Script.connect(server).open(account.address, account.password)
    for raw in MESSAGES:
        tc.append("INBOX", raw)
    tc.C("s1 SELECT INBOX")
    tc.S("* 8 EXISTS", "s1 OK …")
    yield tc
    tc.close()


def test_references(mailbox: Script) -> None:
    tc = mailbox
    tc.C("a1 THREAD REFERENCES UTF-8 ALL")
    tc.S("* THREAD (1 (2 4)(5))(3 8)((6)(7))", "a1 OK …")


def test_orderedsubject(mailbox: Script) -> None:
    # Each base subject a thread, its first message (by sent date) the parent of the others.
    tc = mailbox
    tc.C("a1 THREAD ORDEREDSUBJECT UTF-8 ALL")
    tc.S("* THREAD (1 (2)(4)(5))(3 8)(6 7)", "a1 OK …")


def test_uid_thread_of_the_matched_messages(mailbox: Script) -> None:
    # Only the matched messages are threaded: without 1 and 2, 4 and 5 hang under a dummy.
    tc = mailbox
    tc.C("a1 STORE 1:2 +FLAGS (\\Seen)")
    tc.S("a1 OK …")
    tc.C("a2 UID THREAD REFERENCES UTF-8 UNSEEN SUBJECT plan")
    tc.S("* THREAD ((4)(5))", "a2 OK …")
    tc.C("a3 THREAD REFERENCES UTF-8 SUBJECT nothing-like-it")
    tc.S("* THREAD", "a3 OK …")
    tc.C("a4 STORE 1:2 -FLAGS (\\Seen)")
    tc.S("a4 OK …")


def test_unknown_algorithm_and_charset(mailbox: Script) -> None:
    tc = mailbox
    tc.C("a1 THREAD SHUFFLE UTF-8 ALL")
    tc.S("a1 BAD …")
    tc.C("a2 THREAD REFERENCES KOI8-R ALL")
    tc.S("a2 NO [BADCHARSET…] …")
