"""DELETE (RFC 9051 §6.3.5): not INBOX, never the inferiors, and a new mailbox of the same
name never reuses UIDs (RFC 9051 §2.3.1.1)."""

from __future__ import annotations

from tests.imap_server.dialogue import Script, status_items
from tests.imap_server.messages import text_message


def test_a_mailbox_and_its_messages(tc: Script) -> None:
    tc.C("a1 CREATE Old")
    tc.S("a1 OK …")
    tc.append("Old", text_message("In the old folder"))
    tc.C("a2 DELETE Old")
    tc.S("a2 OK …")
    tc.C('a3 LIST "" Old')
    tc.S("a3 OK …", absent=['* LIST (…) "/" Old'])
    tc.C("a4 SELECT Old")
    tc.S("a4 NO …")


def test_inbox_cannot_be_deleted(tc: Script) -> None:
    tc.C("a1 DELETE INBOX")
    tc.S("a1 NO …")
    tc.C("a2 SELECT INBOX")
    tc.S("a2 OK …")


def test_unknown_mailbox(tc: Script) -> None:
    tc.C("a1 DELETE No-Such-Folder")
    tc.S("a1 NO …")


def test_inferiors_are_kept(tc: Script) -> None:
    tc.C("a1 CREATE Parent/Child")
    tc.S("a1 OK …")
    tc.C("a2 DELETE Parent")
    # Either refused, or the name becomes \Noselect: Parent/Child MUST NOT go with it.
    tc.S("a2 {:OK|NO} …")
    tc.C('a3 LIST "" Parent/Child')
    tc.S('* LIST (…) "/" Parent/Child', "a3 OK …")


def test_a_new_mailbox_of_the_same_name_does_not_reuse_uids(tc: Script) -> None:
    tc.C("a1 CREATE Reused")
    tc.S("a1 OK …")
    tc.append("Reused", text_message("First life"))
    tc.C("a2 STATUS Reused (UIDVALIDITY UIDNEXT)")
    tc.S("* STATUS Reused ({before:.*})", "a2 OK …")
    tc.C("a3 DELETE Reused")
    tc.S("a3 OK …")
    tc.C("a4 CREATE Reused")
    tc.S("a4 OK …")
    tc.C("a5 STATUS Reused (MESSAGES UIDVALIDITY UIDNEXT)")
    tc.S("* STATUS Reused ({after:.*})", "a5 OK …")
    before, after = status_items(tc.vars["before"]), status_items(tc.vars["after"])
    assert after["MESSAGES"] == 0
    assert after["UIDVALIDITY"] != before["UIDVALIDITY"] or after["UIDNEXT"] >= before["UIDNEXT"], (
        before,
        after,
    )


def test_the_selected_mailbox(tc: Script) -> None:
    tc.C("a1 CREATE Doomed")
    tc.S("a1 OK …")
    tc.C("a2 SELECT Doomed")
    tc.S("a2 OK …")
    tc.C("a3 DELETE Doomed")
    tc.S("a3 {:OK|NO} …")
    tc.C("a4 NOOP")
    tc.S("a4 OK …")
