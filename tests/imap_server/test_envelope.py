"""ENVELOPE exactly as RFC 9051 §7.5.2 builds it: date, subject, from, sender, reply-to, to,
cc, bcc, in-reply-to, message-id; group syntax (RFC 5322 §3.4) as ``(NIL NIL "group" NIL)`` …
``(NIL NIL NIL NIL)``; obsolete source routes (RFC 5322 §4.4) in the adl; Sender and Reply-To
defaulting to From when absent or empty; absent fields NIL, empty ones the empty string."""

from __future__ import annotations

import pytest

from tests.imap_server.dialogue import Script, fetch_items, parse_data
from tests.imap_server.messages import crlf

DATE = "Sat, 01 Feb 2007 01:02:03 +0200"

CASES = [
    (  # every field, each with a display name
        f"Message-ID: <msg@id>\nIn-Reply-To: <reply@to.id>\nDate: {DATE}\n"
        "Subject: subject header\nFrom: From Real <fromuser@fromdomain.org>\n"
        "To: To Real <touser@todomain.org>\nCc: Cc Real <ccuser@ccdomain.org>\n"
        "Bcc: Bcc Real <bccuser@bccdomain.org>\n"
        "Sender: Sender Real <senderuser@senderdomain.org>\n"
        "Reply-To: ReplyTo Real <replytouser@replytodomain.org>\n",
        f'("{DATE}" "subject header" (("From Real" NIL "fromuser" "fromdomain.org"))'
        ' (("Sender Real" NIL "senderuser" "senderdomain.org"))'
        ' (("ReplyTo Real" NIL "replytouser" "replytodomain.org"))'
        ' (("To Real" NIL "touser" "todomain.org")) (("Cc Real" NIL "ccuser" "ccdomain.org"))'
        ' (("Bcc Real" NIL "bccuser" "bccdomain.org")) "<reply@to.id>" "<msg@id>")',
    ),
    (  # only From: Sender and Reply-To take its value, the rest is NIL
        f"Date: {DATE}\nFrom: user@domain\n",
        f'("{DATE}" NIL ((NIL NIL "user" "domain")) ((NIL NIL "user" "domain"))'
        ' ((NIL NIL "user" "domain")) NIL NIL NIL NIL NIL)',
    ),
    (  # groups, and a comment as the only name
        f"Date: {DATE}\nFrom: user@domain (Real Name)\n"
        "To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\n",
        f'("{DATE}" NIL (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain"))'
        ' (("Real Name" NIL "user" "domain")) ((NIL NIL "group" NIL) (NIL NIL "g1" "d1.org")'
        ' (NIL NIL "g2" "d2.org") (NIL NIL NIL NIL) (NIL NIL "group2" NIL)'
        ' (NIL NIL "g3" "d3.org") (NIL NIL NIL NIL)) NIL NIL NIL NIL)',
    ),
    (  # empty Sender and Reply-To are From's too
        f"Date: {DATE}\nFrom: user@domain (Real Name)\nSender: \nReply-To: \n",
        f'("{DATE}" NIL (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain"))'
        ' (("Real Name" NIL "user" "domain")) NIL NIL NIL NIL NIL)',
    ),
    (  # a source route
        f"Date: {DATE}\nFrom: <@route:user@domain>\n",
        f'("{DATE}" NIL ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain"))'
        ' ((NIL "@route" "user" "domain")) NIL NIL NIL NIL NIL)',
    ),
    (  # an empty group; present but empty Subject and Message-ID are "", not NIL
        "From: a@b.example\nTo: undisclosed-recipients:;\nSubject: \nMessage-ID: \n",
        '(NIL "" ((NIL NIL "a" "b.example")) ((NIL NIL "a" "b.example"))'
        ' ((NIL NIL "a" "b.example")) ((NIL NIL "undisclosed-recipients" NIL)'
        ' (NIL NIL NIL NIL)) NIL NIL NIL "")',
    ),
    (  # encoded words and message ids as written; comments inside an address dropped
        "From: =?utf-8?q?Andr=C3=A9?= <a@b.example>\n"
        "To: <user (comment)@ (comment) domain.org>\n"
        "In-Reply-To: <x@y>  <z@w>\nMessage-ID:   <id@host>\n",
        '(NIL NIL (("=?utf-8?q?Andr=C3=A9?=" NIL "a" "b.example"))'
        ' (("=?utf-8?q?Andr=C3=A9?=" NIL "a" "b.example"))'
        ' (("=?utf-8?q?Andr=C3=A9?=" NIL "a" "b.example"))'
        ' ((NIL NIL "user" "domain.org")) NIL NIL "<x@y>  <z@w>" "<id@host>")',
    ),
]


@pytest.mark.parametrize(("header", "envelope"), CASES)
def test_envelope(tc: Script, header: str, envelope: str) -> None:
    tc.append("INBOX", crlf(header + "\nbody\n"))
    tc.C("s1 SELECT INBOX")
    tc.S("* 1 EXISTS", "s1 OK …")
    tc.C("a1 FETCH 1 (ENVELOPE)")
    reply = tc.S("* 1 FETCH (ENVELOPE …)", "a1 OK …")
    got = fetch_items(reply.having("* 1 FETCH …")[0])["ENVELOPE"]
    assert got == parse_data(envelope)
