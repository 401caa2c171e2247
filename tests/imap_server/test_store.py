"""STORE (RFC 9051 §6.4.6): FLAGS, +FLAGS, -FLAGS, .SILENT, keywords, UID STORE."""

from __future__ import annotations

import pytest

from tests.imap_server.dialogue import Script, fetch_items
from tests.imap_server.messages import text_message


@pytest.fixture
def one(tc: Script) -> Script:
    tc.append("INBOX", text_message("Flags"))
    tc.C("s1 SELECT INBOX")
    tc.S("* 1 EXISTS", "s1 OK …")
    return tc


def test_replace_add_remove(one: Script) -> None:
    tc = one
    tc.C("a1 STORE 1 FLAGS (\\Seen)")
    tc.S("* 1 FETCH (FLAGS (\\Seen))", "a1 OK …")
    tc.C("a2 STORE 1 +FLAGS (\\Flagged \\Answered)")
    tc.S("* 1 FETCH (FLAGS (\\Answered \\Flagged \\Seen))", "a2 OK …")
    tc.C("a3 STORE 1 -FLAGS (\\Seen \\Answered)")
    tc.S("* 1 FETCH (FLAGS (\\Flagged))", "a3 OK …")
    tc.C("a4 STORE 1 FLAGS ()")
    tc.S("* 1 FETCH (FLAGS ())", "a4 OK …")


def test_silent(one: Script) -> None:
    tc = one
    tc.C("a1 STORE 1 +FLAGS.SILENT (\\Flagged)")
    tc.S("a1 OK …", absent=["* 1 FETCH …"])
    tc.C("a2 FETCH 1 (FLAGS)")
    tc.S("* 1 FETCH (FLAGS (\\Flagged))", "a2 OK …")


def test_keywords(one: Script) -> None:
    tc = one
    tc.C("a1 STORE 1 +FLAGS ($Important NonJunk)")
    tc.S("* 1 FETCH (FLAGS ($Important NonJunk))", "a1 OK …")
    tc.C("a2 STORE 1 -FLAGS (nonjunk)")  # flags and keywords are case-insensitive
    tc.S("* 1 FETCH (FLAGS ($Important))", "a2 OK …")


def test_uid_store_returns_the_uid(one: Script) -> None:
    tc = one
    tc.C("a1 FETCH 1 (UID)")
    tc.S("* 1 FETCH (UID {uid})", "a1 OK …")
    tc.C(f"a2 UID STORE {tc.vars['uid']} +FLAGS (\\Seen)")
    reply = tc.S("* 1 FETCH (…)", "a2 OK …")
    items = fetch_items(reply.lines[0])
    assert items["UID"] == int(tc.vars["uid"]) and items["FLAGS"] == [b"\\Seen"]


def test_several_messages(tc: Script) -> None:
    for subject in ("A", "B", "C"):
        tc.append("INBOX", text_message(subject))
    tc.C("a1 SELECT INBOX")
    tc.S("a1 OK …")
    tc.C("a2 STORE 1:2 +FLAGS (\\Deleted)")
    tc.S("* 1 FETCH (FLAGS (\\Deleted))", "* 2 FETCH (FLAGS (\\Deleted))", "a2 OK …")
    tc.C("a3 SEARCH DELETED")
    tc.S("* SEARCH 1 2", "a3 OK …")


def test_bad_forms(one: Script) -> None:
    tc = one
    tc.C("a1 STORE 1 FROB (\\Seen)")
    tc.S("a1 BAD …")
    tc.C("a2 STORE 1 +FLAGS")
    tc.S("a2 BAD …")
    tc.C("a3 STORE 1 +FLAGS (\\NoSuchSystemFlag)")
    tc.S("a3 {:BAD|NO} …")
    tc.C("a4 FETCH 1 (FLAGS)")
    tc.S("* 1 FETCH (FLAGS ())", "a4 OK …")
