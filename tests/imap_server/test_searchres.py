"""SEARCHRES (RFC 5182): RETURN (SAVE) keeps the result, ``$`` uses it."""

from __future__ import annotations

import pytest

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import CORPUS


@pytest.fixture
def corpus(tc: Script) -> Script:
    for message, flags, date in CORPUS:
        tc.append("INBOX", message, flags=flags, date=date)
    tc.C("s1 SELECT INBOX")
    tc.S("* 5 EXISTS", "s1 OK …")
    return tc


def test_save_then_fetch_dollar(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 SEARCH RETURN (SAVE) SEEN")
    # SAVE alone: no ESEARCH response (RFC 5182 §2.1).
    tc.S("a1 OK …", absent=["* ESEARCH …", "* SEARCH …"])
    tc.C("a2 FETCH $ (FLAGS)")
    reply = tc.S(
        "* 1 FETCH (FLAGS (\\Seen))",
        "* 4 FETCH (FLAGS ($Important \\Answered \\Seen))",
        "a2 OK …",
    )
    assert len(reply.having("* {} FETCH …")) == 2


def test_save_with_other_return_options(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 UID SEARCH RETURN (SAVE COUNT) FLAGGED")
    tc.S('* ESEARCH (TAG "a1") UID COUNT 1', "a1 OK …")
    tc.C("a2 UID STORE $ +FLAGS (\\Seen)")
    tc.S("* 2 FETCH (…\\Seen…)", "a2 OK …")


def test_dollar_in_search(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 SEARCH RETURN (SAVE) OR FLAGGED ANSWERED")
    tc.S("a1 OK …")
    tc.C("a2 SEARCH $ SEEN")
    tc.S("* SEARCH 4", "a2 OK …")


def test_dollar_is_empty_before_any_save(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 FETCH $ (FLAGS)")
    tc.S("a1 OK …", absent=["* {} FETCH …"])


def test_dollar_is_reset_by_select(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 SEARCH RETURN (SAVE) ALL")
    tc.S("a1 OK …")
    tc.C("a2 SELECT INBOX")
    tc.S("a2 OK …")
    tc.C("a3 FETCH $ (UID)")
    tc.S("a3 OK …", absent=["* {} FETCH …"])
