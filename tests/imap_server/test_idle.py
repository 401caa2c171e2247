"""IDLE (RFC 2177, RFC 9051 §6.3.13): another session's append, flag change and expunge
arrive while idling, without a command, and DONE ends it."""

from __future__ import annotations

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message

PROMPT = 1.0  # issue 3 item 5 wants 50 ms; a loaded CI machine gets some slack


def test_new_mail_arrives_while_idling(tc: Script, tc2: Script) -> None:
    tc.C("a1 SELECT INBOX")
    tc.S("* 0 EXISTS", "a1 OK …")
    tc.C("a2 IDLE")
    tc.S("+ …")

    tc2.append("INBOX", text_message("While you were idle"))

    tc.S("* 1 EXISTS", timeout=PROMPT)
    tc.C("DONE")
    tc.S("a2 OK …")


def test_flag_change_by_another_session(tc: Script, tc2: Script) -> None:
    tc.append("INBOX", text_message("To be read elsewhere"))
    tc.C("a1 SELECT INBOX")
    tc.S("* 1 EXISTS", "a1 OK …")
    tc.C("a2 IDLE")
    tc.S("+ …")

    tc2.C("b1 SELECT INBOX")
    tc2.S("b1 OK …")
    tc2.C("b2 STORE 1 +FLAGS.SILENT (\\Seen)")
    tc2.S("b2 OK …")

    tc.S("* 1 FETCH (FLAGS (\\Seen))", timeout=PROMPT)
    tc.C("DONE")
    tc.S("a2 OK …")


def test_expunge_by_another_session(tc: Script, tc2: Script) -> None:
    tc.append("INBOX", text_message("Short-lived"))
    tc.C("a1 SELECT INBOX")
    tc.S("* 1 EXISTS", "a1 OK …")
    tc.C("a2 IDLE")
    tc.S("+ …")

    tc2.C("b1 SELECT INBOX")
    tc2.S("b1 OK …")
    tc2.C("b2 STORE 1 +FLAGS.SILENT (\\Deleted)")
    tc2.S("b2 OK …")
    tc2.C("b3 EXPUNGE")
    tc2.S("* 1 EXPUNGE", "b3 OK …")

    tc.S("* 1 EXPUNGE", timeout=PROMPT)
    tc.C("DONE")
    tc.S("a2 OK …")
    tc.C("a3 STATUS INBOX (MESSAGES)")
    tc.S("* STATUS INBOX (MESSAGES 0)", "a3 OK …")


def test_in_the_authenticated_state(tc: Script) -> None:
    tc.C("a1 IDLE")
    tc.S("+ …")
    tc.C("DONE")
    tc.S("a1 OK …")


def test_anything_but_done_is_bad(tc: Script) -> None:
    tc.C("a1 SELECT INBOX")
    tc.S("a1 OK …")
    tc.C("a2 IDLE")
    tc.S("+ …")
    tc.C("a3 NOOP")
    tc.S("a2 BAD …")
    tc.C("a4 NOOP")
    tc.S("a4 OK …")
