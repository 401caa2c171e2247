"""\\Recent for IMAP4rev1 sessions (RFC 3501 §2.3.2, §6.3.1, §7.3.2): a message is recent in
exactly one session, the first told of it; EXAMINE shows it without clearing it (§6.3.2); a
COPY makes recent messages in the destination; an IMAP4rev2 session sees none (RFC 9051
Appendix E)."""

from __future__ import annotations

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message


def _keep(*scripts: Script) -> None:
    for script in scripts:
        script.keep_recent = True


def test_examine_shows_recent_and_keeps_it(tc: Script, tc2: Script) -> None:
    _keep(tc, tc2)
    tc.append("INBOX", text_message("One"))
    tc.append("INBOX", text_message("Two"))
    tc.C("a1 EXAMINE INBOX")
    tc.S("* 2 EXISTS", "* 2 RECENT", "a1 OK [READ-ONLY] …")
    tc.C("a2 FETCH 1:2 (FLAGS)")
    tc.S("* 1 FETCH (FLAGS (\\Recent))", "* 2 FETCH (FLAGS (\\Recent))", "a2 OK …")
    # EXAMINE cleared nothing: the next SELECT gets them, and is the only one to.
    tc2.C("b1 SELECT INBOX")
    tc2.S("* 2 EXISTS", "* 2 RECENT", "b1 OK [READ-WRITE] …")
    tc.C("a3 EXAMINE INBOX")
    tc.S("* 2 EXISTS", "* 0 RECENT", "a3 OK [READ-ONLY] …")


def test_select_claims_them_once(tc: Script, tc2: Script) -> None:
    _keep(tc, tc2)
    tc.append("INBOX", text_message("One"))
    tc.C("a1 SELECT INBOX")
    tc.S("* 1 EXISTS", "* 1 RECENT", "a1 OK …")
    tc.C("a2 SEARCH RECENT")
    tc.S("* SEARCH 1", "a2 OK …")
    tc.C("a3 SEARCH NEW")
    tc.S("* SEARCH 1", "a3 OK …")
    tc2.C("b1 SELECT INBOX")
    tc2.S("* 1 EXISTS", "* 0 RECENT", "b1 OK …")
    tc2.C("b2 FETCH 1 (FLAGS)")
    tc2.S("* 1 FETCH (FLAGS ())", "b2 OK …")
    tc2.C("b3 SEARCH OLD")
    tc2.S("* SEARCH 1", "b3 OK …")


def test_new_mail_is_recent_in_the_session_that_sees_it_first(tc: Script, tc2: Script) -> None:
    _keep(tc)
    tc.C("a1 SELECT INBOX")
    tc.S("* 0 EXISTS", "* 0 RECENT", "a1 OK …")
    tc2.append("INBOX", text_message("Arrives"))
    tc.C("a2 NOOP")
    tc.S("* 1 EXISTS", "* 1 RECENT", "a2 OK …", ordered=True)
    tc.C("a3 FETCH 1 (FLAGS)")
    tc.S("* 1 FETCH (FLAGS (\\Recent))", "a3 OK …")


def test_copy_makes_recent_messages_in_the_destination(tc: Script, tc2: Script) -> None:
    _keep(tc, tc2)
    tc.append("INBOX", text_message("One"), flags="\\Seen")
    tc.append("INBOX", text_message("Two"))
    tc.C("c1 CREATE Kept")
    tc.S("c1 OK …")
    tc2.C("b1 SELECT Kept")
    tc2.S("* 0 EXISTS", "b1 OK …")
    tc.C("a1 SELECT INBOX")
    tc.S("a1 OK …")
    tc.C("a2 COPY 1:2 Kept")
    tc.S("a2 OK [COPYUID …] …")
    tc2.C("b2 NOOP")
    tc2.S("* 2 EXISTS", "* 2 RECENT", "b2 OK …")
    tc2.C("b3 FETCH 1:2 (FLAGS)")
    tc2.S("* 1 FETCH (FLAGS (\\Recent \\Seen))", "* 2 FETCH (FLAGS (\\Recent))", "b3 OK …")


def test_status_recent(tc: Script) -> None:
    tc.append("INBOX", text_message("One"))
    tc.C("a1 STATUS INBOX (MESSAGES RECENT)")
    tc.S("* STATUS INBOX (MESSAGES 1 RECENT 1)", "a1 OK …")


def test_an_imap4rev2_session_sees_no_recent_and_takes_none(tc: Script, tc2: Script) -> None:
    _keep(tc, tc2)
    tc.append("INBOX", text_message("One"))
    tc.C("e1 ENABLE IMAP4rev2")
    tc.S("* ENABLED {:(?i:IMAP4rev2)}", "e1 OK …")
    tc.C("a1 SELECT INBOX")
    tc.S("* 1 EXISTS", "a1 OK …", absent=["* {} RECENT"])
    tc.C("a2 FETCH 1 (FLAGS)")
    tc.S("* 1 FETCH (FLAGS ())", "a2 OK …")
    # The IMAP4rev1 session that comes next is the first told of it.
    tc2.C("b1 SELECT INBOX")
    tc2.S("* 1 RECENT", "b1 OK …")
