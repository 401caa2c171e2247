"""RENAME (RFC 9051 §6.3.6): inferiors follow, existing names are refused, and renaming
INBOX moves its messages to the new mailbox and leaves INBOX empty."""

from __future__ import annotations

from tests.imap_server.dialogue import Script, listed
from tests.imap_server.messages import text_message


def test_with_its_messages(tc: Script) -> None:
    tc.C("a1 CREATE Before")
    tc.S("a1 OK …")
    tc.append("Before", text_message("Moves along"))
    tc.C("a2 RENAME Before After")
    tc.S("a2 OK …")
    tc.C('a3 LIST "" *')
    reply = tc.S('* LIST (…) "/" After', "a3 OK …")
    assert "Before" not in listed(reply)
    tc.C("a4 STATUS After (MESSAGES)")
    tc.S("* STATUS After (MESSAGES 1)", "a4 OK …")


def test_inferiors_are_renamed(tc: Script) -> None:
    tc.C("a1 CREATE Clinic/Cardiology")
    tc.S("a1 OK …")
    tc.C("a2 RENAME Clinic Hospital")
    tc.S("a2 OK …")
    tc.C('a3 LIST "" *')
    reply = tc.S('* LIST (…) "/" Hospital/Cardiology', "a3 OK …")
    assert not {"Clinic", "Clinic/Cardiology"} & set(listed(reply))


def test_into_a_new_hierarchy(tc: Script) -> None:
    tc.C("a1 CREATE Loose")
    tc.S("a1 OK …")
    tc.C("a2 RENAME Loose Filed/2025/Loose")
    tc.S("a2 OK …")
    tc.C('a3 LIST "" Filed*')
    reply = tc.S('* LIST (…) "/" Filed/2025/Loose', "a3 OK …")
    assert {"Filed", "Filed/2025", "Filed/2025/Loose"} <= set(listed(reply))


def test_to_an_existing_name(tc: Script) -> None:
    tc.C("a1 CREATE Mine")
    tc.S("a1 OK …")
    tc.C("a2 RENAME Mine Sent")
    tc.S("a2 NO …")


def test_unknown_mailbox(tc: Script) -> None:
    tc.C("a1 RENAME No-Such-Folder Whatever")
    tc.S("a1 NO …")


def test_inbox_moves_its_messages_and_stays(tc: Script) -> None:
    tc.append("INBOX", text_message("Old mail one"))
    tc.append("INBOX", text_message("Old mail two"))
    tc.C("a1 RENAME INBOX Old-Inbox")
    tc.S("a1 OK …")
    tc.C("a2 STATUS Old-Inbox (MESSAGES)")
    tc.S("* STATUS Old-Inbox (MESSAGES 2)", "a2 OK …")
    tc.C("a3 STATUS INBOX (MESSAGES)")
    tc.S("* STATUS INBOX (MESSAGES 0)", "a3 OK …")
    tc.C("a4 SELECT INBOX")
    tc.S("* 0 EXISTS", "a4 OK [READ-WRITE] …")


def test_to_inbox_is_refused(tc: Script) -> None:
    tc.C("a1 CREATE Elsewhere")
    tc.S("a1 OK …")
    tc.C("a2 RENAME Elsewhere INBOX")
    tc.S("a2 NO …")
