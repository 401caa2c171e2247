"""UNSELECT (RFC 3691, RFC 9051 §6.4.2): leaves the mailbox without expunging."""

from __future__ import annotations

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message


def test_leaves_without_expunging(tc: Script) -> None:
    tc.append("INBOX", text_message("Deleted but kept"), flags="\\Deleted")
    tc.C("a1 SELECT INBOX")
    tc.S("* 1 EXISTS", "a1 OK …")
    tc.C("a2 UNSELECT")
    tc.S("a2 OK …", absent=["* 1 EXPUNGE"])
    tc.C("a3 FETCH 1 (FLAGS)")
    tc.S("a3 BAD …")
    tc.C("a4 STATUS INBOX (MESSAGES DELETED)")
    tc.S("* STATUS INBOX (MESSAGES 1 DELETED 1)", "a4 OK …")


def test_needs_a_selected_mailbox(tc: Script) -> None:
    tc.C("a1 UNSELECT")
    tc.S("a1 BAD …")
