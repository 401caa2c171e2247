"""SORT and UID SORT (RFC 5256 §3), DISPLAYFROM/DISPLAYTO (RFC 5957), ESORT (RFC 5267 §3) and
PARTIAL results of SEARCH and SORT (RFC 9394); text keys compared in the i;unicode-casemap
collation (RFC 5051)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import crlf
from tests.imap_server.servers import PreparedServer

# (header fields, body, INTERNALDATE): sizes grow 1 < 3 < 2 < 4 with the bodies.
MESSAGES = [
    (
        'From: "Zoé Blanc" <zoe@b.test>\nTo: adam@x.test\nSubject: Re: Budget\n'
        "Date: Tue, 18 Nov 2025 10:00:00 +0000\n",
        "ok\n",
        "20-Nov-2025 08:00:00 +0000",
    ),
    (
        'From: "Yann" <Alice@a.test>\nTo: "Yves" <yves@x.test>\nSubject: budget\n'
        # 04:30 UTC on the 18th: before message 1 once both are in UTC.
        "Date: Mon, 17 Nov 2025 23:30:00 -0500\n",
        "x" * 600 + "\n",
        "19-Nov-2025 08:00:00 +0000",
    ),
    (
        # No Date: the sent date is the INTERNALDATE (RFC 5256 §2.2).
        'From: bob@c.test\nTo: "Émile" <emile@x.test>\nSubject: [team] Agenda\n',
        "y" * 200 + "\n",
        "17-Nov-2025 12:00:00 +0000",
    ),
    (
        "From: =?utf-8?q?=C3=89lodie?= <elodie@d.test>\nSubject: Fwd: agenda (fwd)\n"
        "Date: Sun, 16 Nov 2025 09:00:00 +0000\n",
        "z" * 1500 + "\n",
        "21-Nov-2025 08:00:00 +0000",
    ),
]


@pytest.fixture(scope="module")
def mailbox(server: PreparedServer) -> Iterator[Script]:
    account = server.account()
    tc = Script.connect(server).open(account.address, account.password)
    for header, body, when in MESSAGES:
        tc.append("INBOX", crlf(header + "\n" + body), date=when)
    tc.C("s1 SELECT INBOX")
    tc.S("* 4 EXISTS", "s1 OK …")
    yield tc
    tc.close()


def test_sort_is_advertised(mailbox: Script) -> None:
    tc = mailbox
    tc.C("a1 CAPABILITY")
    tc.S("* CAPABILITY {caps:.*}", "a1 OK …")
    caps = set(tc.vars["caps"].split())
    assert {"SORT", "SORT=DISPLAY", "ESORT", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT"} <= caps


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        # RFC 5256 §2.1: the base subject drops Re:, Fwd:, (fwd) and a leading [blob].
        ("SUBJECT", "* SORT 3 4 1 2"),
        # §3 DATE: the sent date in UTC; message 3 has none and sorts by its INTERNALDATE.
        ("DATE", "* SORT 4 3 2 1"),
        ("ARRIVAL", "* SORT 3 2 1 4"),
        ("REVERSE ARRIVAL", "* SORT 4 1 2 3"),
        # §3 FROM: the first From address's mailbox, case-insensitively.
        ("FROM", "* SORT 2 3 4 1"),
        # A message without To sorts first (its key is the empty string).
        ("TO", "* SORT 4 1 3 2"),
        ("REVERSE SIZE", "* SORT 4 2 3 1"),
        # Equal keys (no Cc anywhere) keep the mailbox order, also reversed.
        ("CC", "* SORT 1 2 3 4"),
        ("REVERSE CC", "* SORT 1 2 3 4"),
        # RFC 5957 §3: the display name, RFC 2047 decoded, else the address.
        ("DISPLAYFROM", "* SORT 3 4 2 1"),
        ("DISPLAYTO", "* SORT 4 1 3 2"),
        ("SUBJECT DATE", "* SORT 4 3 2 1"),
        ("SUBJECT REVERSE DATE", "* SORT 3 4 1 2"),
    ],
)
def test_sort_keys(mailbox: Script, keys: str, expected: str) -> None:
    tc = mailbox
    tc.C(f"a1 SORT ({keys}) UTF-8 ALL")
    tc.S(expected, "a1 OK …")


def test_uid_sort_of_the_matched_messages(mailbox: Script) -> None:
    # RFC 5256 §3: only the messages the search criteria match, numbered by UID.
    tc = mailbox
    tc.C("a1 UID SORT (DATE) UTF-8 SUBJECT agenda")
    tc.S("* SORT 4 3", "a1 OK …")
    tc.C("a2 SORT (DATE) US-ASCII FROM zoe")
    tc.S("* SORT 1", "a2 OK …")
    tc.C("a3 SORT (DATE) UTF-8 SUBJECT nothing-like-it")
    tc.S("* SORT", "a3 OK …")


def test_unknown_charset_and_key(mailbox: Script) -> None:
    tc = mailbox
    tc.C("a1 SORT (DATE) KOI8-R ALL")
    tc.S("a1 NO [BADCHARSET…] …")
    tc.C("a2 SORT (WEIGHT) UTF-8 ALL")
    tc.S("a2 BAD …")
    tc.C("a3 SORT DATE UTF-8 ALL")
    tc.S("a3 BAD …")


def test_esort_return_options(mailbox: Script) -> None:
    # RFC 5267 §3.2: MIN and MAX are the first and last in sort order; ALL lists them in
    # that order, ascending runs as ranges.
    tc = mailbox
    tc.C("a1 SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL")
    tc.S('* ESEARCH (TAG "a1") MIN 4 MAX 1 COUNT 4 ALL 4,3,2,1', "a1 OK …")
    tc.C("a2 UID SORT RETURN (COUNT) (ARRIVAL) UTF-8 SUBJECT budget")
    tc.S('* ESEARCH (TAG "a2") UID COUNT 2', "a2 OK …")
    tc.C("a3 SORT RETURN () (REVERSE DATE) UTF-8 ALL")
    tc.S('* ESEARCH (TAG "a3") ALL 1:4', "a3 OK …")


def test_sort_with_modseq_enables_condstore(mailbox: Script) -> None:
    # RFC 7162 §3.1: SORT with MODSEQ enables CONDSTORE; the result carries the highest
    # MODSEQ of the messages it returns.
    tc = mailbox
    tc.C("a1 SORT (DATE) UTF-8 MODSEQ 1")
    tc.S("* OK [HIGHESTMODSEQ {:\\d+}] …", "* SORT 4 3 2 1 (MODSEQ {:\\d+})", "a1 OK …")


def test_partial_results(mailbox: Script) -> None:
    # RFC 9394 §3.1: PARTIAL a:b returns the results at positions a to b (SORT: in sort
    # order; -a:-b counts from the end), the range echoed, NIL when none is there.
    tc = mailbox
    tc.C("a1 CAPABILITY")
    tc.S("* CAPABILITY {:.* PARTIAL .*}", "a1 OK …")
    tc.C("a2 SEARCH RETURN (PARTIAL 1:2) ALL")
    tc.S('* ESEARCH (TAG "a2") PARTIAL (1:2 1:2)', "a2 OK …")
    tc.C("a3 UID SEARCH RETURN (COUNT PARTIAL -1:-3) ALL")
    tc.S('* ESEARCH (TAG "a3") UID COUNT 4 PARTIAL (-1:-3 2:4)', "a3 OK …")
    tc.C("a4 SEARCH RETURN (PARTIAL 5:9) ALL")
    tc.S('* ESEARCH (TAG "a4") PARTIAL (5:9 NIL)', "a4 OK …")
    tc.C("a5 SORT RETURN (PARTIAL 1:2) (DATE) UTF-8 ALL")
    tc.S('* ESEARCH (TAG "a5") PARTIAL (1:2 4,3)', "a5 OK …")
    tc.C("a6 SORT RETURN (PARTIAL -1:-2) (DATE) UTF-8 ALL")
    tc.S('* ESEARCH (TAG "a6") PARTIAL (-1:-2 2,1)', "a6 OK …")
    tc.C("a7 SEARCH RETURN (PARTIAL 0:3) ALL")
    tc.S("a7 BAD …")
    tc.C("a8 SEARCH RETURN (PARTIAL 1:-3) ALL")
    tc.S("a8 BAD …")
