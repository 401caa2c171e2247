"""MULTIAPPEND (RFC 3502): several messages in one APPEND, all of them or none."""

from __future__ import annotations

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message

ONE = text_message("One")
TWO = text_message("Two")


def test_two_messages_in_one_append(tc: Script) -> None:
    tc.C("a1 CAPABILITY")
    tc.S("* CAPABILITY {:.*MULTIAPPEND.*}", "a1 OK …")
    tc.C(f"a2 APPEND INBOX (\\Seen) {{{len(ONE)}}}")
    tc.S("+ …")
    tc.send(ONE + f' ($Label1) "17-Nov-2025 09:30:00 +0100" {{{len(TWO)}}}\r\n'.encode())
    tc.S("+ …")
    tc.send(TWO + b"\r\n")
    # RFC 4315 §3 with RFC 3502: the APPENDUID names both new messages.
    tc.S("a2 OK [APPENDUID {:\\d+} 1:2] …")
    tc.C("a3 SELECT INBOX")
    tc.S("* 2 EXISTS", "a3 OK …")
    tc.C("a4 FETCH 1:2 (FLAGS INTERNALDATE)")
    tc.S(
        '* 1 FETCH (FLAGS (\\Seen) INTERNALDATE "{:[^"]+}")',
        '* 2 FETCH (FLAGS ($Label1) INTERNALDATE "17-Nov-2025 09:30:00 +0100")',
        "a4 OK …",
    )
    tc.C("a5 SEARCH SUBJECT Two")
    tc.S("* SEARCH 2", "a5 OK …")


def test_none_appended_when_one_is_refused(tc: Script) -> None:
    # RFC 3502 §6.3.11: an empty second message makes the command fail; the first one is
    # not kept either.
    tc.C(f"a1 APPEND INBOX {{{len(ONE)}}}")
    tc.S("+ …")
    tc.send(ONE + b" {0}\r\n")
    tc.S("+ …")
    tc.send(b"\r\n")
    tc.S("a1 BAD …")
    tc.C("a2 STATUS INBOX (MESSAGES)")
    tc.S("* STATUS INBOX (MESSAGES 0)", "a2 OK …")
