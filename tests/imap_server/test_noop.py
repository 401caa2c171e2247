"""NOOP (RFC 9051 §6.1.2): does nothing, in every state, but is the moment pending mailbox
changes made by other sessions are reported (RFC 9051 §5.2, §7)."""

from __future__ import annotations

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message


def test_in_every_state(connect: Connect, tc: Script) -> None:
    anonymous = connect("tc2")
    anonymous.S("* OK …")
    anonymous.C("b1 NOOP")
    anonymous.S("b1 OK …")

    tc.C("a1 NOOP")
    tc.S("a1 OK …")
    tc.C("a2 SELECT INBOX")
    tc.S("a2 OK [READ-WRITE] …")
    tc.C("a3 NOOP")
    tc.S("a3 OK …")


def test_reports_a_message_another_session_appended(tc: Script, tc2: Script) -> None:
    tc.C("a1 SELECT INBOX")
    tc.S("* 0 EXISTS", "a1 OK [READ-WRITE] …")

    tc2.append("INBOX", text_message("Arrived meanwhile"))

    tc.C("a2 NOOP")
    tc.S("* 1 EXISTS", "a2 OK …")


def test_reports_flags_another_session_changed(tc: Script, tc2: Script) -> None:
    tc.append("INBOX", text_message("Flag me"))
    tc.C("a1 SELECT INBOX")
    tc.S("* 1 EXISTS", "a1 OK [READ-WRITE] …")

    tc2.C("b1 SELECT INBOX")
    tc2.S("b1 OK [READ-WRITE] …")
    tc2.C("b2 STORE 1 +FLAGS.SILENT (\\Flagged)")
    tc2.S("b2 OK …")

    tc.C("a2 NOOP")
    tc.S("* 1 FETCH (FLAGS (\\Flagged))", "a2 OK …")


def test_reports_an_expunge_by_another_session(tc: Script, tc2: Script) -> None:
    tc.append("INBOX", text_message("Keep"))
    tc.append("INBOX", text_message("Delete"))
    tc.C("a1 SELECT INBOX")
    tc.S("* 2 EXISTS", "a1 OK [READ-WRITE] …")

    tc2.C("b1 SELECT INBOX")
    tc2.S("b1 OK [READ-WRITE] …")
    tc2.C("b2 STORE 2 +FLAGS.SILENT (\\Deleted)")
    tc2.S("b2 OK …")
    tc2.C("b3 EXPUNGE")
    tc2.S("* 2 EXPUNGE", "b3 OK …")

    tc.C("a2 NOOP")
    tc.S("* 2 EXPUNGE", "a2 OK …")
