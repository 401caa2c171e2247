"""SEARCH FROM, TO, CC and BCC (RFC 9051 §6.4.4): a case-insensitive substring of the whole
field, display names (also one given as a comment) and group names included, after RFC 2047
encoded words are decoded; HEADER with an empty string tests that the field exists."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import crlf
from tests.imap_server.servers import PreparedServer

MESSAGES = [
    "From: user-from@domain.org\nTo: user-to@domain.org\nCc: user-cc@domain.org\n"
    "Bcc: user-bcc@domain.org\n",
    "From: RealFrom <user-from@domain.org>\nTo: RealTo <user-to@domain.org>\n"
    "Cc: RealCc <user-cc@domain.org>\nBcc: RealBcc <user-bcc@domain.org>\n",
    "From: <user-from (comment)@ (comment) domain.org>\nTo: <user-to@domain.org>\n"
    "Cc: <user-cc@domain.org>\nBcc: <user-bcc@domain.org>\n",
    "From: user-from@domain.org (RealFrom)\nTo: user-to@domain.org (RealTo)\n"
    "Cc: user-cc@domain.org (RealCc)\nBcc: user-bcc@domain.org (RealBcc)\n",
    "From: user-from1@domain.org, user-from2@domain.org\nCc: user-cc@domain.org\n",
    "To: groupname: groupuser1@domain.org, groupuser2@domain.org;,\n"
    "  groupname2: groupuser3@domain.org;\n",
    'From: "Réal Frôm" <x@domain.org>\nTo: =?iso-8859-1?q?Andr=E9_Dupont?= <andre@domain.org>\n',
]


@pytest.fixture(scope="module")
def mailbox(server: PreparedServer) -> Iterator[Script]:
    account = server.account()
    tc = Script.connect(server).open(account.address, account.password)
    for header in MESSAGES:
        tc.append("INBOX", crlf(header + "\nbody\n"))
    tc.C("a0 ENABLE UTF8=ACCEPT")
    tc.S("a0 OK …")
    tc.C("s1 SELECT INBOX")
    tc.S("* 7 EXISTS", "s1 OK …")
    yield tc
    tc.close()


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("FROM user-from@domain.org", "* SEARCH 1 2 3 4"),
        ("TO user-to@domain.org", "* SEARCH 1 2 3 4"),
        ("CC user-cc@domain.org", "* SEARCH 1 2 3 4 5"),
        ("BCC user-bcc@domain.org", "* SEARCH 1 2 3 4"),
        # display names, and a comment that is the only name
        ("FROM realfrom", "* SEARCH 2 4"),
        ("TO realto", "* SEARCH 2 4"),
        ("CC realcc", "* SEARCH 2 4"),
        ("BCC realbcc", "* SEARCH 2 4"),
        # substrings
        ("FROM ser-fro", "* SEARCH 1 2 3 4 5"),
        ("TO ser-t", "* SEARCH 1 2 3 4"),
        ("FROM ealfro", "* SEARCH 2 4"),
        ("BCC ealbc", "* SEARCH 2 4"),
        # several addresses in one field
        ("FROM user-from1", "* SEARCH 5"),
        ("FROM user-from2", "* SEARCH 5"),
        # groups: the group's name and its members
        ("TO groupname", "* SEARCH 6"),
        ("TO groupname2", "* SEARCH 6"),
        ("TO groupuser3", "* SEARCH 6"),
        ("TO groupuser4", "* SEARCH"),
        # the field exists (RFC 9051 §6.4.4 HEADER with an empty string)
        ('HEADER FROM ""', "* SEARCH 1 2 3 4 5 7"),
        ('HEADER TO ""', "* SEARCH 1 2 3 4 6 7"),
        ('HEADER BCC ""', "* SEARCH 1 2 3 4"),
        # encoded words decoded, compared without case
        ('TO "andré dupont"', "* SEARCH 7"),
        ('FROM "RÉAL FRÔM"', "* SEARCH 7"),
    ],
)
def test_address_search(mailbox: Script, criteria: str, expected: str) -> None:
    tc = mailbox
    tc.C(f"a1 SEARCH {criteria}")
    tc.S(expected, "a1 OK …")
