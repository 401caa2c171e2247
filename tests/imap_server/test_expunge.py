"""EXPUNGE (RFC 9051 §6.4.3) and UID EXPUNGE (UIDPLUS, RFC 4315 §2.1)."""

from __future__ import annotations

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message


def three_messages(tc: Script) -> None:
    for subject in ("First", "Second", "Third"):
        tc.append("INBOX", text_message(subject))
    tc.C("s1 SELECT INBOX")
    tc.S("* 3 EXISTS", "s1 OK …")
    tc.C("s2 FETCH 1:3 (UID)")
    tc.S("* 1 FETCH (UID {u1})", "* 2 FETCH (UID {u2})", "* 3 FETCH (UID {u3})", "s2 OK …")


def test_removes_the_deleted_message(tc: Script) -> None:
    three_messages(tc)
    tc.C("a1 STORE 2 +FLAGS.SILENT (\\Deleted)")
    tc.S("a1 OK …")
    tc.C("a2 EXPUNGE")
    tc.S("* 2 EXPUNGE", "a2 OK …")
    tc.C("a3 FETCH 1:* (UID)")
    tc.S("* 1 FETCH (UID {u1})", "* 2 FETCH (UID {u3})", "a3 OK …")


def test_several_deleted_messages(tc: Script) -> None:
    three_messages(tc)
    tc.C("a1 STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    tc.S("a1 OK …")
    tc.C("a2 EXPUNGE")
    # Either "* 3 EXPUNGE" then "* 1 EXPUNGE", or "* 1 EXPUNGE" then "* 2 EXPUNGE".
    reply = tc.S("a2 OK …")
    assert len(reply.having("* {} EXPUNGE")) == 2, reply.lines
    tc.C("a3 FETCH 1:* (UID)")
    tc.S("* 1 FETCH (UID {u2})", "a3 OK …", absent=["* 2 FETCH …"])


def test_nothing_deleted_nothing_expunged(tc: Script) -> None:
    three_messages(tc)
    tc.C("a1 EXPUNGE")
    tc.S("a1 OK …", absent=["* {} EXPUNGE"])


def test_uid_expunge_only_the_given_uids(tc: Script) -> None:
    three_messages(tc)
    tc.C("a1 STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    tc.S("a1 OK …")
    tc.C(f"a2 UID EXPUNGE {tc.vars['u2']}")
    tc.S("* 2 EXPUNGE", "a2 OK …")
    tc.C("a3 FETCH 1:* (UID FLAGS)")
    tc.S(
        "* 1 FETCH (UID {u1} FLAGS (\\Deleted))",
        "* 2 FETCH (UID {u3} FLAGS ())",
        "a3 OK …",
    )


def test_needs_a_selected_mailbox(tc: Script) -> None:
    tc.C("a1 EXPUNGE")
    tc.S("a1 BAD …")
    tc.C("a2 UID EXPUNGE 1")
    tc.S("a2 BAD …")
