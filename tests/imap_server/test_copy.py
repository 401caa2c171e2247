"""COPY (RFC 9051 §6.4.7) with COPYUID (UIDPLUS, RFC 4315 §3)."""

from __future__ import annotations

from tests.imap_server.dialogue import Script, fetch_items, numbers
from tests.imap_server.messages import text_message


def test_copyuid_and_flags_are_kept(tc: Script) -> None:
    tc.append("INBOX", text_message("Copy one"), flags="\\Flagged")
    tc.append("INBOX", text_message("Copy two"))
    tc.C("a1 SELECT INBOX")
    tc.S("a1 OK …")
    tc.C("a2 FETCH 1:2 (UID)")
    tc.S("* 1 FETCH (UID {u1})", "* 2 FETCH (UID {u2})", "a2 OK …")
    tc.C("a3 STATUS Archive (UIDVALIDITY)")
    tc.S("* STATUS Archive (UIDVALIDITY {archive_uidvalidity})", "a3 OK …")
    tc.C("a4 COPY 1:2 Archive")
    tc.S("a4 OK [COPYUID {archive_uidvalidity} {source:[\\d:,]+} {dest:[\\d:,]+}] …")
    assert numbers(tc.vars["source"]) == [int(tc.vars["u1"]), int(tc.vars["u2"])]
    dest = numbers(tc.vars["dest"])
    assert len(dest) == 2 and dest == sorted(dest)
    # The source is untouched; the copies carry the flags.
    tc.C("a5 FETCH 1:* (FLAGS)")
    tc.S("* 1 FETCH (FLAGS (\\Flagged))", "* 2 FETCH (FLAGS ())", "a5 OK …")
    tc.C("a6 EXAMINE Archive")
    tc.S("* 2 EXISTS", "a6 OK …")
    tc.C(f"a7 UID FETCH {dest[0]} (FLAGS)")
    reply = tc.S("* 1 FETCH (…)", "a7 OK …")
    assert fetch_items(reply.lines[0]) == {"UID": dest[0], "FLAGS": [b"\\Flagged"]}


def test_uid_copy(tc: Script) -> None:
    tc.append("INBOX", text_message("By UID"))
    tc.C("a1 SELECT INBOX")
    tc.S("a1 OK …")
    tc.C("a2 FETCH 1 (UID)")
    tc.S("* 1 FETCH (UID {uid})", "a2 OK …")
    tc.C(f"a3 UID COPY {tc.vars['uid']} Trash")
    tc.S("a3 OK [COPYUID {} {uid} {}] …")
    tc.C("a4 STATUS Trash (MESSAGES)")
    tc.S("* STATUS Trash (MESSAGES 1)", "a4 OK …")


def test_unknown_destination_says_trycreate(tc: Script) -> None:
    tc.append("INBOX", text_message("Nowhere to go"))
    tc.C("a1 SELECT INBOX")
    tc.S("a1 OK …")
    tc.C("a2 COPY 1 No-Such-Folder")
    tc.S("a2 NO [TRYCREATE] …")
