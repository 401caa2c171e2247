"""REPLACE and UID REPLACE (RFC 8508): a draft saved again replaces the old one in one
command: APPENDUID in an untagged OK, the old message's EXPUNGE, then the tagged OK."""

from __future__ import annotations

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message

DRAFT1 = text_message("Draft, first version")
DRAFT2 = text_message("Draft, second version")
DRAFT3 = text_message("Draft, third version")


def test_replace_in_the_same_mailbox(tc: Script) -> None:
    tc.C("a0 CAPABILITY")
    tc.S("* CAPABILITY {:.*REPLACE.*}", "a0 OK …")
    tc.append("Drafts", DRAFT1, flags="\\Draft")
    tc.C("s1 SELECT Drafts")
    tc.S("* 1 EXISTS", "s1 OK …")
    tc.C(f"a1 REPLACE 1 Drafts (\\Draft) {{{len(DRAFT2)}}}")
    tc.S("+ …")
    tc.send(DRAFT2 + b"\r\n")
    # RFC 8508 §3: the replacement's UID first, then the old message goes.
    tc.S("* OK [APPENDUID {:\\d+} 2] …", "* 1 EXPUNGE", "* 1 EXISTS", "a1 OK …")
    tc.C("a2 UID SEARCH SUBJECT second")
    tc.S("* SEARCH 2", "a2 OK …")
    # UID REPLACE names the message by UID; the new one can go to another mailbox.
    tc.C(f"a3 UID REPLACE 2 INBOX {{{len(DRAFT3)}}}")
    tc.S("+ …")
    tc.send(DRAFT3 + b"\r\n")
    tc.S("* OK [APPENDUID {:\\d+} 1] …", "* 1 EXPUNGE", "a3 OK …")
    tc.C("a4 STATUS INBOX (MESSAGES)")
    tc.S("* STATUS INBOX (MESSAGES 1)", "a4 OK …")


def test_refusals(tc: Script) -> None:
    tc.append("INBOX", DRAFT1)
    tc.C("s1 SELECT INBOX")
    tc.S("* 1 EXISTS", "s1 OK …")
    # A sequence number past the end is a BAD (as for FETCH); an unknown UID a NO.
    tc.C("a1 REPLACE 5 INBOX {1+}\r\nx")
    tc.S("a1 BAD …")
    tc.C("a2 UID REPLACE 99 INBOX {1+}\r\nx")
    tc.S("a2 NO [NONEXISTENT] …")
    tc.C("a3 REPLACE 1 Nowhere {1+}\r\nx")
    tc.S("a3 NO [TRYCREATE] …")
    # §3.3: EXAMINEd, the old message cannot be expunged.
    tc.C("s2 EXAMINE INBOX")
    tc.S("s2 OK [READ-ONLY] …")
    tc.C("a4 REPLACE 1 INBOX {1+}\r\nx")
    tc.S("a4 NO [READ-ONLY] …")
    tc.C("a5 STATUS INBOX (MESSAGES)")
    tc.S("* STATUS INBOX (MESSAGES 1)", "a5 OK …")
