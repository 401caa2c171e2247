"""LSUB (RFC 3501 §6.3.9), kept for IMAP4rev1 clients."""

from __future__ import annotations

from tests.imap_server.dialogue import Script, listed


def test_lists_the_subscribed_mailboxes(tc: Script) -> None:
    tc.C("a1 CREATE Projects")
    tc.S("a1 OK …")
    tc.C("a2 CREATE Private")
    tc.S("a2 OK …")
    tc.C("a3 SUBSCRIBE Projects")
    tc.S("a3 OK …")
    tc.C('a4 LSUB "" *')
    reply = tc.S('* LSUB (…) "/" Projects', "a4 OK …")
    assert "Private" not in listed(reply)


def test_percent_shows_an_unsubscribed_parent_as_noselect(tc: Script) -> None:
    tc.C("a1 CREATE Team/Minutes")
    tc.S("a1 OK …")
    tc.C("a2 SUBSCRIBE Team/Minutes")
    tc.S("a2 OK …")
    tc.C('a3 LSUB "" %')
    # RFC 3501 §6.3.9: "foo" is returned with \Noselect when only "foo/bar" is subscribed.
    tc.S('* LSUB (…\\Noselect…) "/" Team', "a3 OK …")
