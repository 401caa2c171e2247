"""SUBSCRIBE and UNSUBSCRIBE (RFC 9051 §6.3.7, §6.3.8), seen through LIST (SUBSCRIBED)."""

from __future__ import annotations

from tests.imap_server.dialogue import Script, listed


def test_subscribe_then_unsubscribe(tc: Script) -> None:
    tc.C("a1 CREATE Projects")
    tc.S("a1 OK …")
    tc.C("a2 SUBSCRIBE Projects")
    tc.S("a2 OK …")
    tc.C('a3 LIST (SUBSCRIBED) "" Projects')
    tc.S('* LIST (…\\Subscribed…) "/" Projects', "a3 OK …")
    tc.C("a4 UNSUBSCRIBE Projects")
    tc.S("a4 OK …")
    tc.C('a5 LIST (SUBSCRIBED) "" *')
    reply = tc.S("a5 OK …")
    assert "Projects" not in listed(reply)
    # The mailbox itself is still there.
    tc.C('a6 LIST "" Projects')
    tc.S('* LIST (…) "/" Projects', "a6 OK …")


def test_subscription_survives_the_mailbox(tc: Script) -> None:
    tc.C("a1 CREATE Ephemeral")
    tc.S("a1 OK …")
    tc.C("a2 SUBSCRIBE Ephemeral")
    tc.S("a2 OK …")
    tc.C("a3 DELETE Ephemeral")
    tc.S("a3 OK …")
    # RFC 9051 §6.3.7 / RFC 5258 §3: still subscribed, flagged \NonExistent.
    tc.C('a4 LIST (SUBSCRIBED) "" Ephemeral')
    tc.S('* LIST (…\\NonExistent…) "/" Ephemeral', "a4 OK …")


def test_without_a_name_is_bad(tc: Script) -> None:
    tc.C("a1 SUBSCRIBE")
    tc.S("a1 BAD …")
    tc.C("a2 UNSUBSCRIBE")
    tc.S("a2 BAD …")
