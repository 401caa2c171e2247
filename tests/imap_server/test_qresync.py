"""QRESYNC (RFC 7162 §3.2): SELECT (QRESYNC …) with VANISHED (EARLIER), VANISHED instead of
EXPUNGE, UID FETCH … (CHANGEDSINCE … VANISHED), and OK [CLOSED]."""

from __future__ import annotations

import pytest

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message
from tests.imap_server.servers import Account


@pytest.fixture
def synced(tc: Script) -> Script:
    """Three messages, and the state a client remembers: UIDVALIDITY, HIGHESTMODSEQ, UIDs."""
    for subject in ("One", "Two", "Three"):
        tc.append("INBOX", text_message(subject))
    tc.C("s0 ENABLE QRESYNC")
    tc.S("s0 OK …")
    tc.C("s1 SELECT INBOX")
    tc.S(
        "* 3 EXISTS",
        "* OK [UIDVALIDITY {uidvalidity}] …",
        "* OK [HIGHESTMODSEQ {highest}] …",
        "s1 OK …",
    )
    tc.C("s2 FETCH 1:3 (UID)")
    tc.S("* 1 FETCH (UID {u1})", "* 2 FETCH (UID {u2})", "* 3 FETCH (UID {u3})", "s2 OK …")
    return tc


def change_elsewhere(tc2: Script) -> None:
    """Another client expunges message 2 and flags message 3."""
    tc2.C("b1 SELECT INBOX")
    tc2.S("b1 OK …")
    tc2.C("b2 STORE 2 +FLAGS.SILENT (\\Deleted)")
    tc2.S("b2 OK …")
    tc2.C("b3 EXPUNGE")
    tc2.S("b3 OK …")
    tc2.C("b4 STORE 2 +FLAGS.SILENT (\\Flagged)")
    tc2.S("b4 OK …")


def test_select_qresync_reports_what_changed(
    synced: Script, tc2: Script, connect: Connect, account: Account
) -> None:
    tc = synced
    tc.C("a1 LOGOUT")
    tc.S("a1 OK …")
    change_elsewhere(tc2)

    tc3 = connect("tc3").open(account.address, account.password)
    tc3.vars.update(tc.vars)
    tc3.C("c1 ENABLE QRESYNC")
    tc3.S("c1 OK …")
    tc3.C(f"c2 SELECT INBOX (QRESYNC ({tc.vars['uidvalidity']} {tc.vars['highest']}))")
    tc3.S(
        "* 2 EXISTS",
        "* VANISHED (EARLIER) {u2}",
        "* 2 FETCH (UID {u3} FLAGS (\\Flagged) MODSEQ ({:\\d+}))",
        "c2 OK [READ-WRITE] …",
        absent=["* 1 FETCH …"],
    )


def test_expunge_is_reported_as_vanished(synced: Script) -> None:
    tc = synced
    tc.C("a1 STORE 1 +FLAGS.SILENT (\\Deleted)")
    tc.S("a1 OK …")
    tc.C("a2 EXPUNGE")
    tc.S("* VANISHED {u1}", "a2 OK …", absent=["* {} EXPUNGE"])


def test_another_sessions_expunge_is_vanished_too(synced: Script, tc2: Script) -> None:
    tc = synced
    change_elsewhere(tc2)
    tc.C("a1 NOOP")
    tc.S("* VANISHED {u2}", "* 2 FETCH (…\\Flagged…)", "a1 OK …", absent=["* {} EXPUNGE"])


def test_uid_fetch_changedsince_vanished(synced: Script, tc2: Script) -> None:
    tc = synced
    change_elsewhere(tc2)
    tc.C("a1 NOOP")
    tc.S("a1 OK …")
    tc.C(f"a2 UID FETCH 1:* (FLAGS) (CHANGEDSINCE {tc.vars['highest']} VANISHED)")
    tc.S(
        "* VANISHED (EARLIER) {u2}",
        "* 2 FETCH (UID {u3} FLAGS (\\Flagged) MODSEQ ({:\\d+}))",
        "a2 OK …",
        absent=["* 1 FETCH …"],
    )


def test_qresync_parameter_without_enable_is_bad(tc: Script) -> None:
    tc.C("a1 SELECT INBOX (QRESYNC (1 1))")
    tc.S("a1 BAD …")


def test_closed_when_switching_mailboxes(synced: Script) -> None:
    tc = synced
    tc.C("a1 SELECT Sent")
    tc.S("* OK [CLOSED] …", "a1 OK …", ordered=True)
