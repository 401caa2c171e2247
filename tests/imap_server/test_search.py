"""SEARCH (RFC 9051 §6.4.4, RFC 3501 §6.4.4 for IMAP4rev1 clients): flags, sequence sets,
UIDs, dates, sizes, header and body text searched in the decrypted messages (including UTF-8
with CHARSET UTF-8), and OR/NOT/parenthesised groups.

The corpus (messages.CORPUS): 1 seen, 2 flagged multipart report, 3 UTF-8 analysis results,
4 answered+seen+$Important, 5 deleted newsletter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import CORPUS, REPORT
from tests.imap_server.servers import PreparedServer


@pytest.fixture(scope="module")
def corpus(server: PreparedServer) -> Iterator[Script]:
    """One session on the corpus for the whole module: searches only read it."""
    account = server.account()
    tc = Script.connect(server).open(account.address, account.password)
    for message, flags, date in CORPUS:
        tc.append("INBOX", message, flags=flags, date=date)
    tc.C("s1 SELECT INBOX")
    tc.S("* 5 EXISTS", "s1 OK …")
    yield tc
    tc.close()


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("ALL", "* SEARCH 1 2 3 4 5"),
        ("SEEN", "* SEARCH 1 4"),
        ("UNSEEN", "* SEARCH 2 3 5"),
        ("FLAGGED", "* SEARCH 2"),
        ("ANSWERED", "* SEARCH 4"),
        ("DELETED", "* SEARCH 5"),
        ("UNDELETED", "* SEARCH 1 2 3 4"),
        ("KEYWORD $Important", "* SEARCH 4"),
        ("UNKEYWORD $Important", "* SEARCH 1 2 3 5"),
        ("DRAFT", "* SEARCH"),
        ("2:4", "* SEARCH 2 3 4"),
        ("4:*", "* SEARCH 4 5"),
        ("*", "* SEARCH 5"),
        ("1,3,5", "* SEARCH 1 3 5"),
    ],
)
def test_flags_and_sequence_sets(corpus: Script, criteria: str, expected: str) -> None:
    tc = corpus
    tc.C(f"a1 SEARCH {criteria}")
    tc.S(expected, "a1 OK …")


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("BEFORE 18-Nov-2025", "* SEARCH 1"),
        ("ON 18-Nov-2025", "* SEARCH 2"),
        ("SINCE 21-Nov-2025", "* SEARCH 4 5"),
        ("SENTBEFORE 03-Oct-2025", "* SEARCH 1"),
        ("SENTON 03-Oct-2025", "* SEARCH 3"),
        ("SENTSINCE 04-Oct-2025", "* SEARCH 2 4 5"),
        (f"LARGER {len(REPORT) - 1}", "* SEARCH 2"),
        (f"SMALLER {len(REPORT)}", "* SEARCH 1 3 4 5"),
    ],
)
def test_dates_and_sizes(corpus: Script, criteria: str, expected: str) -> None:
    tc = corpus
    tc.C(f"a1 SEARCH {criteria}")
    tc.S(expected, "a1 OK …")


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("FROM claire.martin", "* SEARCH 2"),
        ('FROM "alice martin"', "* SEARCH 1 4"),
        ("TO jean.dupont", "* SEARCH 2"),
        ("CC secretariat", "* SEARCH 2"),
        ("SUBJECT ORDONNANCE", "* SEARCH 4"),
        ("HEADER In-Reply-To rdv-2025-11-10", "* SEARCH 2"),
        ('HEADER Message-ID ""', "* SEARCH 1 2 3 4 5"),
        ('BODY "rendez-vous lundi"', "* SEARCH 1"),
        ("BODY renouveler", "* SEARCH 4"),
        ("BODY subject", "* SEARCH"),  # a header word is not in the body
        ("TEXT ordonnance", "* SEARCH 4"),  # TEXT covers the header too
        ("BODY confraternellement", "* SEARCH 2"),  # inside the multipart's text part
    ],
)
def test_header_and_body_text(corpus: Script, criteria: str, expected: str) -> None:
    tc = corpus
    tc.C(f"a1 SEARCH {criteria}")
    tc.S(expected, "a1 OK …")


def test_utf8_body_with_charset(corpus: Script) -> None:
    tc = corpus
    word = "hémoglobine".encode()
    tc.C(f"a1 SEARCH CHARSET UTF-8 BODY {{{len(word)}}}")
    tc.S("+ …")
    tc.C(word)
    tc.S("* SEARCH 3", "a1 OK …")


def test_utf8_in_a_quoted_decoded_header(corpus: Script) -> None:
    tc = corpus
    word = "résultats".encode()
    tc.C(f"a1 SEARCH CHARSET UTF-8 SUBJECT {{{len(word)}}}")
    tc.S("+ …")
    tc.C(word)
    # The Subject is an RFC 2047 encoded word: the server searches the decoded text.
    tc.S("* SEARCH 3", "a1 OK …")


def test_utf8_in_the_multipart_text(corpus: Script) -> None:
    tc = corpus
    word = "d'éjection".encode()
    tc.C(f"a1 SEARCH CHARSET UTF-8 TEXT {{{len(word)}+}}")
    tc.C(word)
    tc.S("* SEARCH 2", "a1 OK …")


def test_unknown_charset_is_badcharset(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 SEARCH CHARSET X-NO-SUCH-CHARSET TEXT hello")
    tc.S("a1 NO [BADCHARSET…] …")


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("OR SEEN FLAGGED", "* SEARCH 1 2 4"),
        ("NOT SEEN", "* SEARCH 2 3 5"),
        ("SEEN UNDELETED NOT ANSWERED", "* SEARCH 1"),
        ("OR (FROM alice SEEN) DELETED", "* SEARCH 1 4 5"),
        ("(OR 1 2) (OR 2 3)", "* SEARCH 2"),
        ("NOT (OR SEEN DELETED)", "* SEARCH 2 3"),
    ],
)
def test_or_not_and_groups(corpus: Script, criteria: str, expected: str) -> None:
    tc = corpus
    tc.C(f"a1 SEARCH {criteria}")
    tc.S(expected, "a1 OK …")


def test_uid_search_and_uid_criteria(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 FETCH 2:4 (UID)")
    tc.S("* 2 FETCH (UID {u2})", "* 3 FETCH (UID {u3})", "* 4 FETCH (UID {u4})", "a1 OK …")
    u2, u4 = tc.vars["u2"], tc.vars["u4"]
    tc.C(f"a2 SEARCH UID {u2}:{u4}")
    tc.S("* SEARCH 2 3 4", "a2 OK …")
    tc.C("a3 UID SEARCH FLAGGED")
    tc.S(f"* SEARCH {u2}", "a3 OK …")


def test_syntax_errors_are_bad(corpus: Script) -> None:
    tc = corpus
    tc.C("a1 SEARCH OR SEEN")
    tc.S("a1 BAD …")
    tc.C("a2 SEARCH NO-SUCH-KEY")
    tc.S("a2 BAD …")
    tc.C("a3 SEARCH BEFORE 2025-11-18")
    tc.S("a3 BAD …")
    tc.C("a4 NOOP")
    tc.S("a4 OK …")
