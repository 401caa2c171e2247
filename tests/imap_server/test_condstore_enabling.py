"""CONDSTORE turned on by a command (RFC 7162 §3.1): the first CONDSTORE-enabling command in
the selected state (FETCH MODSEQ, FETCH CHANGEDSINCE, SEARCH MODSEQ, STORE UNCHANGEDSINCE) is
preceded by ``* OK [HIGHESTMODSEQ n]``; ESEARCH results of a search that used MODSEQ carry
the highest MODSEQ of the messages they return (RFC 7162 §3.1.5, RFC 4731 §3.1)."""

from __future__ import annotations

import pytest

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message


@pytest.fixture
def four(tc: Script) -> Script:
    for i in range(4):
        tc.append("INBOX", text_message(f"Message {i}"))
    tc.C("s1 SELECT INBOX")
    tc.S("* 4 EXISTS", "s1 OK …", absent=["* OK [HIGHESTMODSEQ …] …"])
    return tc


@pytest.mark.parametrize(
    "command",
    ["FETCH 1 (MODSEQ)", "FETCH 1:* (FLAGS) (CHANGEDSINCE 1)", "SEARCH MODSEQ 1",
     "STORE 1 (UNCHANGEDSINCE 100000) +FLAGS (\\Flagged)"],
)  # fmt: skip
def test_first_enabling_command_sends_highestmodseq(four: Script, command: str) -> None:
    tc = four
    tc.C(f"a1 {command}")
    tc.S("* OK [HIGHESTMODSEQ {:\\d+}] …", "a1 OK …")
    tc.C("a2 FETCH 2 (MODSEQ)")
    tc.S("* 2 FETCH (MODSEQ ({}))", "a2 OK …", absent=["* OK [HIGHESTMODSEQ …] …"])


def test_esearch_modseq_is_that_of_the_returned_messages(four: Script) -> None:
    tc = four
    tc.C("a0 FETCH 1 (MODSEQ)")
    tc.S("* OK [HIGHESTMODSEQ {:\\d+}] …", "a0 OK …")
    modseqs = {}
    for seq in (1, 3, 2, 4):
        tc.C(f"t{seq} STORE {seq} +FLAGS (\\Seen)")
        tc.S(f"* {seq} FETCH (FLAGS (\\Seen) MODSEQ ({{m{seq}:\\d+}}))", f"t{seq} OK …")
        modseqs[seq] = tc.vars[f"m{seq}"]
    m1, m2, m3 = modseqs[1], modseqs[2], modseqs[3]
    tc.C('a1 SEARCH RETURN (MIN) 1:3 MODSEQ "/flags/\\\\seen" all 1')
    tc.S(f'* ESEARCH (TAG "a1") MIN 1 MODSEQ {m1}', "a1 OK …")
    tc.C('a2 SEARCH RETURN (MAX) 1:3 MODSEQ "/flags/\\\\seen" all 1')
    tc.S(f'* ESEARCH (TAG "a2") MAX 3 MODSEQ {m3}', "a2 OK …")
    tc.C('a3 SEARCH RETURN () 1:3 MODSEQ "/flags/\\\\seen" all 1')
    tc.S(f'* ESEARCH (TAG "a3") ALL 1:3 MODSEQ {m2}', "a3 OK …")
    tc.C('a4 SEARCH RETURN (MIN MAX) 2:3 MODSEQ "/flags/\\\\seen" all 1')
    tc.S(f'* ESEARCH (TAG "a4") MIN 2 MAX 3 MODSEQ {m2}', "a4 OK …")
    tc.C(f"a5 SEARCH RETURN (ALL) 2:3 MODSEQ {m2}")
    tc.S(f'* ESEARCH (TAG "a5") ALL 2 MODSEQ {m2}', "a5 OK …")
    tc.C(f"a6 SEARCH RETURN (ALL) 2:3 MODSEQ {modseqs[4]}")
    tc.S('* ESEARCH (TAG "a6")', "a6 OK …")
