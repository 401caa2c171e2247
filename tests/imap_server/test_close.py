"""CLOSE (RFC 9051 §6.4.1): expunges \\Deleted messages silently and leaves the mailbox;
not in a read-only one."""

from __future__ import annotations

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message


def test_expunges_silently(tc: Script) -> None:
    tc.append("INBOX", text_message("Keep me"))
    tc.append("INBOX", text_message("Bin me"), flags="\\Deleted")
    tc.C("a1 SELECT INBOX")
    tc.S("* 2 EXISTS", "a1 OK …")
    tc.C("a2 CLOSE")
    tc.S("a2 OK …", absent=["* {} EXPUNGE", "* VANISHED …"])
    tc.C("a3 FETCH 1 (FLAGS)")
    tc.S("a3 BAD …")
    tc.C("a4 STATUS INBOX (MESSAGES)")
    tc.S("* STATUS INBOX (MESSAGES 1)", "a4 OK …")


def test_read_only_mailbox_is_not_expunged(tc: Script) -> None:
    tc.append("INBOX", text_message("Deleted, examined"), flags="\\Deleted")
    tc.C("a1 EXAMINE INBOX")
    tc.S("a1 OK [READ-ONLY] …")
    tc.C("a2 CLOSE")
    tc.S("a2 OK …")
    tc.C("a3 STATUS INBOX (MESSAGES)")
    tc.S("* STATUS INBOX (MESSAGES 1)", "a3 OK …")


def test_needs_a_selected_mailbox(tc: Script) -> None:
    tc.C("a1 CLOSE")
    tc.S("a1 BAD …")
