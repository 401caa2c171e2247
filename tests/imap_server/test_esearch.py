"""ESEARCH (RFC 4731; the SEARCH of RFC 9051 §6.4.4): RETURN (MIN MAX COUNT ALL)."""

from __future__ import annotations

import pytest

from tests.imap_server.dialogue import Script, numbers
from tests.imap_server.messages import CORPUS


@pytest.fixture
def corpus(tc: Script) -> Script:
    for message, flags, date in CORPUS:
        tc.append("INBOX", message, flags=flags, date=date)
    tc.C("s1 SELECT INBOX")
    tc.S("* 5 EXISTS", "s1 OK …")
    return tc


def test_min_max_count_all(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
    tc.S('* ESEARCH (TAG "a1") {result:.*}', "a1 OK …")
    words = tc.vars["result"].split()
    result = dict(zip(words[::2], words[1::2], strict=True))
    assert {k.upper(): v for k, v in result.items() if k.upper() != "ALL"} == {
        "MIN": "2",
        "MAX": "5",
        "COUNT": "3",
    }
    assert numbers(result.get("ALL", result.get("all", ""))) == [2, 3, 5]


def test_count_only(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 SEARCH RETURN (COUNT) SEEN")
    tc.S('* ESEARCH (TAG "a1") COUNT 2', "a1 OK …")


def test_empty_return_means_all(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 SEARCH RETURN () FLAGGED")
    tc.S('* ESEARCH (TAG "a1") ALL 2', "a1 OK …")


def test_no_match_gives_no_min_max_all(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 SEARCH RETURN (MIN MAX COUNT ALL) DRAFT")
    # RFC 4731 §3.1: MIN, MAX and ALL are omitted when nothing matches; COUNT is 0.
    tc.S('* ESEARCH (TAG "a1") COUNT 0', "a1 OK …")


def test_uid_search_says_uid(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 FETCH 2 (UID)")
    tc.S("* 2 FETCH (UID {u2})", "a1 OK …")
    tc.C("a2 UID SEARCH RETURN (MIN COUNT) FLAGGED")
    tc.S('* ESEARCH (TAG "a2") UID MIN {u2} COUNT 1', "a2 OK …")


def test_unknown_return_option_is_bad(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 SEARCH RETURN (NO-SUCH-OPTION) ALL")
    tc.S("a1 BAD …")
