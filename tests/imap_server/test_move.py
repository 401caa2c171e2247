"""MOVE (RFC 6851, RFC 9051 §6.4.8): COPYUID in an untagged OK before the EXPUNGE."""

from __future__ import annotations

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message


def two_messages(tc: Script) -> None:
    tc.append("INBOX", text_message("Stay"))
    tc.append("INBOX", text_message("Go"))
    tc.C("s1 SELECT INBOX")
    tc.S("* 2 EXISTS", "s1 OK …")
    tc.C("s2 FETCH 2 (UID)")
    tc.S("* 2 FETCH (UID {u2})", "s2 OK …")


def test_move(tc: Script) -> None:
    two_messages(tc)
    tc.C("a1 MOVE 2 Trash")
    tc.S("* OK [COPYUID {} {u2} {}] …", "* 2 EXPUNGE", "a1 OK …", ordered=True)
    tc.C("a2 FETCH 1:* (UID)")
    tc.S("* 1 FETCH (UID {})", "a2 OK …", absent=["* 2 FETCH …"])
    tc.C("a3 STATUS Trash (MESSAGES)")
    tc.S("* STATUS Trash (MESSAGES 1)", "a3 OK …")


def test_uid_move(tc: Script) -> None:
    two_messages(tc)
    tc.C(f"a1 UID MOVE {tc.vars['u2']} Archive")
    tc.S("* OK [COPYUID {} {u2} {}] …", "* 2 EXPUNGE", "a1 OK …", ordered=True)


def test_move_with_qresync_says_vanished(tc: Script) -> None:
    tc.C("a0 ENABLE QRESYNC")
    tc.S("a0 OK …")
    two_messages(tc)
    tc.C("a1 MOVE 2 Trash")
    tc.S("* OK [COPYUID {} {u2} {}] …", "* VANISHED {u2}", "a1 OK …", ordered=True)


def test_another_session_sees_the_expunge(tc: Script, tc2: Script) -> None:
    two_messages(tc)
    tc2.C("b1 SELECT INBOX")
    tc2.S("* 2 EXISTS", "b1 OK …")
    tc.C("a1 MOVE 1 Drafts")
    tc.S("* 1 EXPUNGE", "a1 OK …")
    tc2.C("b2 NOOP")
    tc2.S("* 1 EXPUNGE", "b2 OK …")


def test_unknown_destination_says_trycreate(tc: Script) -> None:
    two_messages(tc)
    tc.C("a1 MOVE 1 No-Such-Folder")
    tc.S("a1 NO [TRYCREATE] …", absent=["* 1 EXPUNGE"])
