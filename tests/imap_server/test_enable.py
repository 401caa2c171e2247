"""ENABLE (RFC 5161): UTF8=ACCEPT (RFC 6855), CONDSTORE and QRESYNC (RFC 7162), IMAP4rev2
(RFC 9051 §6.3.1). The ENABLED response lists what this command newly enabled."""

from __future__ import annotations

from tests.imap_server.conftest import Connect
from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message


def enabled(tc: Script) -> set[str]:
    """The capabilities of the last ``* ENABLED {enabled:.*}`` (names are case-insensitive)."""
    return set(tc.vars.pop("enabled").upper().split())


def test_condstore(tc: Script) -> None:
    tc.C("a1 ENABLE CONDSTORE")
    tc.S("* ENABLED {enabled:.*}", "a1 OK …")
    assert enabled(tc) == {"CONDSTORE"}
    # Now SELECT reports the mailbox's HIGHESTMODSEQ (RFC 7162 §3.1.2.1).
    tc.C("a2 SELECT INBOX")
    tc.S("* OK [HIGHESTMODSEQ {:\\d+}] …", "a2 OK [READ-WRITE] …")


def test_qresync_implies_condstore(tc: Script) -> None:
    tc.C("a1 ENABLE QRESYNC")
    tc.S("* ENABLED {enabled:.*}", "a1 OK …")
    assert "QRESYNC" in enabled(tc)
    tc.C("a2 SELECT INBOX")
    tc.S("* OK [HIGHESTMODSEQ {:\\d+}] …", "a2 OK [READ-WRITE] …")


def test_utf8_accept(tc: Script) -> None:
    tc.C("a1 ENABLE UTF8=ACCEPT")
    tc.S("* ENABLED {enabled:.*}", "a1 OK …")
    assert enabled(tc) == {"UTF8=ACCEPT"}


def test_imap4rev2_changes_search_and_select(tc: Script) -> None:
    tc.append("INBOX", text_message("One"))
    tc.append("INBOX", text_message("Two"))
    tc.C("a1 ENABLE IMAP4rev2")
    tc.S("* ENABLED {enabled:.*}", "a1 OK …")
    assert enabled(tc) == {"IMAP4REV2"}
    tc.C("a2 SELECT INBOX")
    # RFC 9051 §6.3.2: a LIST response for the mailbox, and no RECENT any more.
    tc.keep_recent = True
    tc.S('* LIST (…) "/" INBOX', "* 2 EXISTS", "a2 OK [READ-WRITE] …", absent=["* … RECENT"])
    # RFC 9051 §6.4.4: SEARCH answers with ESEARCH.
    tc.C("a3 SEARCH ALL")
    tc.S('* ESEARCH (TAG "a3") ALL 1:2', "a3 OK …")


def test_several_at_once(tc: Script) -> None:
    tc.C("a1 ENABLE CONDSTORE UTF8=ACCEPT")
    tc.S("* ENABLED {enabled:.*}", "a1 OK …")
    assert enabled(tc) == {"CONDSTORE", "UTF8=ACCEPT"}


def test_unknown_extensions_are_ignored(tc: Script) -> None:
    tc.C("a1 ENABLE X-NO-SUCH-THING")
    tc.S("a1 OK …", absent=["* ENABLED {:(?i:.*X-NO-SUCH-THING.*)}"])


def test_enabling_twice_lists_it_once(tc: Script) -> None:
    tc.C("a1 ENABLE CONDSTORE")
    tc.S("* ENABLED {enabled:.*}", "a1 OK …")
    tc.C("a2 ENABLE CONDSTORE")
    tc.S("a2 OK …", absent=["* ENABLED {:(?i:.*CONDSTORE.*)}"])


def test_not_before_login(connect: Connect) -> None:
    tc = connect()
    tc.S("* OK …")
    tc.C("a1 ENABLE CONDSTORE")
    tc.S("a1 {:BAD|NO} …", absent=["* ENABLED …"])


def test_without_arguments_is_bad(tc: Script) -> None:
    tc.C("a1 ENABLE")
    tc.S("a1 BAD …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")
