"""SELECT and EXAMINE (RFC 9051 §6.3.2, §6.3.3; RFC 3501 §6.3.1 for IMAP4rev1 clients).
CONDSTORE and QRESYNC parameters are in test_condstore.py and test_qresync.py."""

from __future__ import annotations

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message


def test_empty_inbox(tc: Script) -> None:
    tc.C("a1 SELECT INBOX")
    tc.S(
        "* FLAGS ({:[^)]*})",
        "* 0 EXISTS",
        "* OK [UIDVALIDITY {uidvalidity:\\d+}] …",
        "* OK [UIDNEXT {uidnext:\\d+}] …",
        "* OK [PERMANENTFLAGS ({:[^)]*})] …",
        "a1 OK [READ-WRITE] …",
    )
    assert int(tc.vars["uidvalidity"]) > 0 and int(tc.vars["uidnext"]) > 0


def test_imap4rev1_client_gets_recent_and_first_unseen(tc: Script) -> None:
    tc.append("INBOX", text_message("Read already"), flags="\\Seen")
    tc.append("INBOX", text_message("Not yet read"))
    tc.append("INBOX", text_message("Neither"))
    tc.keep_recent = True
    tc.C("a1 SELECT INBOX")
    # RFC 3501 §6.3.1: RECENT is required, and OK [UNSEEN n] names the first unseen message.
    tc.S("* 3 EXISTS", "* {:\\d} RECENT", "* OK [UNSEEN 2] …", "a1 OK [READ-WRITE] …")


def test_flags_and_permanent_flags(tc: Script) -> None:
    tc.C("a1 SELECT INBOX")
    reply = tc.S("* FLAGS ({flags:[^)]*})", "* OK [PERMANENTFLAGS ({perm:[^)]*})] …", "a1 OK …")
    system = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"}
    assert system <= set(tc.vars["flags"].split()), reply.lines
    # Keywords can be created (\*) and every system flag kept (RFC 9051 §7.1).
    assert system | {"\\*"} <= set(tc.vars["perm"].split()), reply.lines


def test_uidnext_is_above_every_uid(tc: Script) -> None:
    tc.append("INBOX", text_message("One"))
    tc.C("a1 SELECT INBOX")
    tc.S("* OK [UIDNEXT {uidnext}] …", "a1 OK …")
    tc.C("a2 FETCH 1 (UID)")
    tc.S("* 1 FETCH (UID {uid})", "a2 OK …")
    assert int(tc.vars["uidnext"]) > int(tc.vars["uid"])


def test_examine_is_read_only(tc: Script) -> None:
    tc.append("INBOX", text_message("Look, do not touch"))
    tc.C("a1 EXAMINE INBOX")
    tc.S("* 1 EXISTS", "a1 OK [READ-ONLY] …")
    tc.C("a2 STORE 1 +FLAGS (\\Flagged)")
    tc.S("a2 NO …")
    # Reading the body does not set \Seen in a read-only mailbox (RFC 9051 §6.4.5).
    tc.C("a3 FETCH 1 (BODY[TEXT])")
    tc.S("* 1 FETCH (BODY[TEXT] …)", "a3 OK …", absent=["* 1 FETCH (…\\Seen…)"])
    tc.C("a4 FETCH 1 (FLAGS)")
    tc.S("* 1 FETCH (FLAGS ())", "a4 OK …")


def test_expunge_is_refused_in_a_read_only_mailbox(tc: Script) -> None:
    tc.append("INBOX", text_message("Deleted but examined"), flags="\\Deleted")
    tc.C("a1 EXAMINE INBOX")
    tc.S("a1 OK [READ-ONLY] …")
    tc.C("a2 EXPUNGE")
    tc.S("a2 NO …", absent=["* 1 EXPUNGE"])


def test_unknown_mailbox_leaves_the_selected_state(tc: Script) -> None:
    tc.C("a1 SELECT INBOX")
    tc.S("a1 OK [READ-WRITE] …")
    tc.C("a2 SELECT No-Such-Folder")
    tc.S("a2 NO …")
    # RFC 9051 §6.3.2: a failed SELECT leaves the client in the authenticated state.
    tc.C("a3 FETCH 1 (FLAGS)")
    tc.S("a3 BAD …")


def test_inbox_is_case_insensitive(tc: Script) -> None:
    tc.append("INBOX", text_message("Case"))
    tc.C("a1 SELECT inbox")
    tc.S("* 1 EXISTS", "a1 OK [READ-WRITE] …")


def test_selecting_another_mailbox_in_imap4rev2_says_closed(tc: Script) -> None:
    tc.C("a1 ENABLE IMAP4rev2")
    tc.S("a1 OK …")
    tc.C("a2 SELECT INBOX")
    tc.S("a2 OK [READ-WRITE] …")
    tc.C("a3 EXAMINE Sent")
    # RFC 9051 §6.3.2: OK [CLOSED] separates the old mailbox's responses from the new one's.
    tc.S("* OK [CLOSED] …", "* 0 EXISTS", "a3 OK [READ-ONLY] …", ordered=True)


def test_default_folders_can_be_selected(tc: Script) -> None:
    for i, name in enumerate(["Sent", "Drafts", "Trash", "Archive"]):
        tc.C(f"a{i} SELECT {name}")
        tc.S("* 0 EXISTS", f"a{i} OK [READ-WRITE] …")


def test_without_a_name_is_bad(tc: Script) -> None:
    tc.C("a1 SELECT")
    tc.S("a1 BAD …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")
