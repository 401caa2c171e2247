"""CONDSTORE (RFC 7162 §3.1): MODSEQ in FETCH, CHANGEDSINCE, STORE UNCHANGEDSINCE with
[MODIFIED], SEARCH MODSEQ, and SELECT (CONDSTORE)."""

from __future__ import annotations

import pytest

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message


@pytest.fixture
def two(tc: Script) -> Script:
    tc.append("INBOX", text_message("First"))
    tc.append("INBOX", text_message("Second"))
    tc.C("s1 SELECT INBOX (CONDSTORE)")
    tc.S("* 2 EXISTS", "* OK [HIGHESTMODSEQ {highest:\\d+}] …", "s1 OK [READ-WRITE] …")
    tc.C("s2 FETCH 1:2 (MODSEQ)")
    tc.S("* 1 FETCH (MODSEQ ({m1:\\d+}))", "* 2 FETCH (MODSEQ ({m2:\\d+}))", "s2 OK …")
    assert max(int(tc.vars["m1"]), int(tc.vars["m2"])) <= int(tc.vars["highest"])
    return tc


def test_store_reports_the_new_modseq(two: Script) -> None:
    tc = two
    tc.C("a1 STORE 1 +FLAGS (\\Flagged)")
    tc.S("* 1 FETCH (FLAGS (\\Flagged) MODSEQ ({m1_after:\\d+}))", "a1 OK …")
    assert int(tc.vars["m1_after"]) > int(tc.vars["highest"])


def test_unchangedsince_succeeds_then_fails_with_modified(two: Script) -> None:
    tc = two
    m1 = tc.vars["m1"]
    tc.C(f"a1 STORE 1 (UNCHANGEDSINCE {m1}) +FLAGS (\\Seen)")
    tc.S("* 1 FETCH (FLAGS (\\Seen) MODSEQ ({}))", "a1 OK …")
    # The message changed since m1: the second conditional STORE must not apply.
    tc.C(f"a2 STORE 1 (UNCHANGEDSINCE {m1}) +FLAGS (\\Flagged)")
    tc.S("a2 OK [MODIFIED 1] …", absent=["* 1 FETCH (…\\Flagged…)"])
    tc.C("a3 FETCH 1 (FLAGS)")
    tc.S("* 1 FETCH (FLAGS (\\Seen)…)", "a3 OK …")


def test_unchangedsince_partly_applies(two: Script) -> None:
    tc = two
    tc.C("a1 STORE 1 +FLAGS.SILENT (\\Answered)")
    tc.S("a1 OK …")
    m = max(int(tc.vars["m1"]), int(tc.vars["m2"]))
    tc.C(f"a2 STORE 1:2 (UNCHANGEDSINCE {m}) +FLAGS (\\Flagged)")
    tc.S("* 2 FETCH (FLAGS (\\Flagged) MODSEQ ({}))", "a2 OK [MODIFIED 1] …")


def test_unchangedsince_zero_always_fails(two: Script) -> None:
    tc = two
    tc.C("a1 STORE 2 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)")
    tc.S("a1 OK [MODIFIED 2] …", absent=["* 2 FETCH (…\\Seen…)"])


def test_fetch_changedsince(two: Script) -> None:
    tc = two
    tc.C("a1 STORE 2 +FLAGS.SILENT (\\Seen)")
    tc.S("a1 OK …")
    tc.C(f"a2 FETCH 1:* (FLAGS) (CHANGEDSINCE {tc.vars['highest']})")
    tc.S("* 2 FETCH (FLAGS (\\Seen) MODSEQ ({}))", "a2 OK …", absent=["* 1 FETCH …"])


def test_search_modseq(two: Script) -> None:
    tc = two
    tc.C("a1 STORE 2 +FLAGS.SILENT (\\Seen)")
    tc.S("a1 OK …")
    tc.C(f"a2 SEARCH MODSEQ {int(tc.vars['highest']) + 1}")
    tc.S("* SEARCH 2 (MODSEQ {:\\d+})", "a2 OK …")


def test_fetch_modseq_enables_condstore(tc: Script) -> None:
    tc.append("INBOX", text_message("Implicit"))
    tc.C("a1 SELECT INBOX")
    tc.S("a1 OK …")
    tc.C("a2 FETCH 1 (MODSEQ)")
    tc.S("* 1 FETCH (MODSEQ ({:\\d+}))", "a2 OK …")
    tc.C("a3 STORE 1 +FLAGS (\\Seen)")
    # From now on FETCH responses carry MODSEQ (RFC 7162 §3.1.4).
    tc.S("* 1 FETCH (FLAGS (\\Seen) MODSEQ ({:\\d+}))", "a3 OK …")


def test_examine_condstore(tc: Script) -> None:
    tc.C("a1 EXAMINE INBOX (CONDSTORE)")
    tc.S("* OK [HIGHESTMODSEQ {:\\d+}] …", "a1 OK [READ-ONLY] …")
