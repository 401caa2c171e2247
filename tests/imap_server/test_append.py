"""APPEND (RFC 9051 §6.3.12): flags, internal date, LITERAL+ (RFC 7888), APPENDUID (UIDPLUS,
RFC 4315), MULTIAPPEND (RFC 3502), APPENDLIMIT (RFC 7889) and TRYCREATE."""

from __future__ import annotations

import re
from datetime import datetime

from tests.imap_server.dialogue import Script, lit
from tests.imap_server.messages import text_message

HELLO = text_message("Hello", "Hello Bob,\nsee you tomorrow.\n")


def test_a_message_comes_back_byte_for_byte(tc: Script) -> None:
    tc.C(f"a1 APPEND INBOX {{{len(HELLO)}}}")
    tc.S("+ …")
    tc.C(HELLO)
    tc.S("a1 OK [APPENDUID {uidvalidity} {uid}] …")
    tc.C("a2 SELECT INBOX")
    tc.S("* 1 EXISTS", "* OK [UIDVALIDITY {uidvalidity}] …", "a2 OK …")
    tc.C("a3 FETCH 1 (UID RFC822.SIZE BODY.PEEK[])")
    tc.S(f"* 1 FETCH (UID {{uid}} RFC822.SIZE {len(HELLO)} BODY[] {lit(HELLO)})", "a3 OK …")


def test_flags_and_internal_date(tc: Script) -> None:
    tc.C(f'a1 APPEND INBOX (\\Seen $Important) "17-Nov-2025 09:30:00 +0100" {{{len(HELLO)}}}')
    tc.S("+ …")
    tc.C(HELLO)
    tc.S("a1 OK …")
    tc.C("a2 SELECT INBOX")
    tc.S("a2 OK …")
    tc.C("a3 FETCH 1 (FLAGS INTERNALDATE)")
    tc.S('* 1 FETCH (FLAGS ($Important \\Seen) INTERNALDATE "{date:[^"]+}")', "a3 OK …")
    # The same instant; the server may keep or convert the zone (RFC 9051 §2.3.3).
    fmt = "%d-%b-%Y %H:%M:%S %z"
    got = datetime.strptime(tc.vars["date"].strip(), fmt)
    assert got == datetime.strptime("17-Nov-2025 09:30:00 +0100", fmt)


def test_non_synchronizing_literal(tc: Script) -> None:
    tc.send(f"a1 APPEND INBOX {{{len(HELLO)}+}}\r\n".encode() + HELLO + b"\r\n")
    tc.S("a1 OK [APPENDUID {} {}] …", absent=["+ …"])
    tc.C("a2 STATUS INBOX (MESSAGES)")
    tc.S("* STATUS INBOX (MESSAGES 1)", "a2 OK …")


def test_multiappend_is_atomic_and_returns_a_uid_set(tc: Script) -> None:
    second = text_message("Second of two")
    tc.C(f"a1 APPEND Drafts (\\Draft) {{{len(HELLO)}}}")
    tc.S("+ …")
    tc.C(HELLO + f" (\\Draft) {{{len(second)}}}".encode())
    tc.S("+ …")
    tc.C(second)
    tc.S("a1 OK [APPENDUID {} {uids:[\\d:,]+}] …")
    assert re.fullmatch(r"\d+:\d+|\d+,\d+", tc.vars["uids"]), tc.vars["uids"]
    tc.C("a2 STATUS Drafts (MESSAGES)")
    tc.S("* STATUS Drafts (MESSAGES 2)", "a2 OK …")


def test_over_appendlimit_is_toobig_without_a_continuation(tc: Script) -> None:
    tc.C("a0 CAPABILITY")
    tc.S("* CAPABILITY …APPENDLIMIT={limit:\\d+}…", "a0 OK …")
    tc.C(f"a1 APPEND INBOX {{{int(tc.vars['limit']) + 1}}}")
    tc.S("a1 NO [TOOBIG] …", absent=["+ …"])
    # Nothing was sent: the session goes on.
    tc.C("a2 STATUS INBOX (MESSAGES)")
    tc.S("* STATUS INBOX (MESSAGES 0)", "a2 OK …")


def test_unknown_mailbox_says_trycreate(tc: Script) -> None:
    tc.C(f"a1 APPEND No-Such-Folder {{{len(HELLO)}}}")
    reply = tc.S("{:\\+ .*|a1 NO \\[TRYCREATE\\] .*}")
    if reply.lines[-1].startswith("+"):  # the server may also refuse after the literal
        tc.C(HELLO)
        tc.S("a1 NO [TRYCREATE] …")
    tc.C('a2 LIST "" No-Such-Folder')
    tc.S("a2 OK …", absent=["* LIST …"])


def test_into_the_selected_mailbox_announces_it(tc: Script) -> None:
    tc.C("a1 SELECT INBOX")
    tc.S("* 0 EXISTS", "a1 OK …")
    tc.C(f"a2 APPEND INBOX {{{len(HELLO)}}}")
    tc.S("+ …")
    tc.C(HELLO)
    tc.S("* 1 EXISTS", "a2 OK …")


def refused_as_bad(tc: Script, tag: str, message: bytes) -> None:
    """BAD before the literal, or after it if the server asked for it first (either is allowed:
    the parser may only see the error once the command is complete)."""
    reply = tc.S(f"{{:{tag} BAD .*|\\+ .*}}")
    if reply.lines[-1].startswith("+"):
        tc.C(message)
        tc.S(f"{tag} BAD …")


def test_bad_flag_list_is_bad(tc: Script) -> None:
    tc.C(f"a1 APPEND INBOX (\\Seen {{{len(HELLO)}}}")
    refused_as_bad(tc, "a1", HELLO)
    tc.C("a2 STATUS INBOX (MESSAGES)")
    tc.S("* STATUS INBOX (MESSAGES 0)", "a2 OK …")


def test_bad_date_is_bad(tc: Script) -> None:
    tc.C(f'a1 APPEND INBOX "31-Foo-2025 99:00:00 +0100" {{{len(HELLO)}}}')
    refused_as_bad(tc, "a1", HELLO)
    tc.C("a2 STATUS INBOX (MESSAGES)")
    tc.S("* STATUS INBOX (MESSAGES 0)", "a2 OK …")
