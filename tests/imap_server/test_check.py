"""CHECK (RFC 3501 §6.4.1; removed from IMAP4rev2 but kept for IMAP4rev1 clients)."""

from __future__ import annotations

from tests.imap_server.dialogue import Script


def test_in_the_selected_state(tc: Script) -> None:
    tc.C("a1 SELECT INBOX")
    tc.S("a1 OK …")
    tc.C("a2 CHECK")
    tc.S("a2 OK …")


def test_needs_a_selected_mailbox(tc: Script) -> None:
    tc.C("a1 CHECK")
    tc.S("a1 BAD …")
