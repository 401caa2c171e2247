"""CREATE (RFC 9051 §6.3.4), with the hierarchy separator ``/`` and CREATE-SPECIAL-USE
(RFC 6154 §3)."""

from __future__ import annotations

from tests.imap_server.dialogue import Script, listed


def test_a_top_level_mailbox(tc: Script) -> None:
    tc.C("a1 CREATE Projects")
    tc.S("a1 OK …")
    tc.C('a2 LIST "" Projects')
    tc.S('* LIST (…) "/" Projects', "a2 OK …")
    tc.C("a3 SELECT Projects")
    tc.S("* 0 EXISTS", "a3 OK [READ-WRITE] …")


def test_superior_names_are_created_too(tc: Script) -> None:
    tc.C("a1 CREATE Projects/2025/Q4")
    tc.S("a1 OK …")
    tc.C('a2 LIST "" Projects*')
    reply = tc.S(
        '* LIST (…) "/" Projects',
        '* LIST (…) "/" Projects/2025',
        '* LIST (…) "/" Projects/2025/Q4',
        "a2 OK …",
    )
    assert set(listed(reply)) == {"Projects", "Projects/2025", "Projects/2025/Q4"}


def test_a_trailing_separator_is_dropped(tc: Script) -> None:
    tc.C("a1 CREATE Letters/")
    tc.S("a1 OK …")
    tc.C('a2 LIST "" Letters*')
    reply = tc.S('* LIST (…) "/" Letters', "a2 OK …")
    assert set(listed(reply)) == {"Letters"}


def test_under_a_default_folder(tc: Script) -> None:
    tc.C("a1 CREATE Archive/2025")
    tc.S("a1 OK …")
    tc.C('a2 LIST "" Archive/%')
    tc.S('* LIST (…) "/" Archive/2025', "a2 OK …")


def test_an_existing_name_is_refused(tc: Script) -> None:
    tc.C("a1 CREATE Projects")
    tc.S("a1 OK …")
    tc.C("a2 CREATE Projects")
    tc.S("a2 NO …")
    tc.C("a3 CREATE Sent")
    tc.S("a3 NO …")


def test_inbox_cannot_be_created_in_any_case(tc: Script) -> None:
    tc.C("a1 CREATE INBOX")
    tc.S("a1 NO …")
    tc.C("a2 CREATE inbox")
    tc.S("a2 NO …")


def test_with_a_special_use(tc: Script) -> None:
    # \Junk: the defaults already hold \Drafts, and a server may allow one mailbox per use.
    tc.C("a1 CREATE Spam (USE (\\Junk))")
    tc.S("a1 OK …")
    tc.C('a2 LIST "" Spam RETURN (SPECIAL-USE)')
    tc.S('* LIST (…\\Junk…) "/" Spam', "a2 OK …")
    tc.C('a3 LIST (SPECIAL-USE) "" *')
    reply = tc.S('* LIST (…\\Junk…) "/" Spam', "a3 OK …")
    assert "Spam" in listed(reply)


def test_with_an_unknown_special_use_creates_nothing(tc: Script) -> None:
    tc.C("a1 CREATE Odd (USE (\\NoSuchUse))")
    # RFC 6154 §3: NO, SHOULD be [USEATTR], and the mailbox MUST NOT exist.
    tc.S("a1 NO …")
    tc.C('a2 LIST "" Odd')
    tc.S("a2 OK …", absent=['* LIST (…) "/" Odd'])


def test_without_a_name_is_bad(tc: Script) -> None:
    tc.C("a1 CREATE")
    tc.S("a1 BAD …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")
