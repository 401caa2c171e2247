"""ENVELOPE, BODYSTRUCTURE and section extraction (RFC 9051 §6.4.5, §7.5.2)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from server.imap.proto.commands import Section
from server.imap.proto.message import (
    analyze,
    binary_bytes,
    format_bodystructure,
    format_envelope,
    section_bytes,
)

PLAIN = (
    b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    b"From: Terry Gray <gray@cac.washington.edu>\r\n"
    b"Subject: =?ISO-8859-1?Q?Caf=E9?= IMAP4rev2\r\n"
    b"To: imap@cac.washington.edu\r\n"
    b"cc: minutes@CNRI.Reston.VA.US,\r\n"
    b'  "John Klensin" <KLENSIN@MIT.EDU>\r\n'
    b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
    b"\r\n"
    b"Hello\r\nworld\r\n"
)

MIXED = (
    b"From: a@example.org\r\n"
    b"Subject: report\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"This is a preamble.\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"R\xc3\xa9sultat normal\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>R&eacute;sultat</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b'Content-Type: application/pdf; name="cr.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="cr.pdf"\r\n'
    b"Content-ID: <pdf1@x>\r\n"
    b"Content-Language: fr\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: inner@example.org\r\n"
    b"Subject: fwd\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--outer--\r\n"
    b"epilogue\r\n"
)


def test_plain_envelope_and_structure() -> None:
    info = analyze(PLAIN)
    assert json.loads(json.dumps(info)) == info
    assert info["size"] == len(PLAIN)
    assert PLAIN[info["header_length"] :] == b"Hello\r\nworld\r\n"
    assert format_envelope(info) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "=?ISO-8859-1?Q?Caf=E9?= IMAP4rev2" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US") ("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
        b'NIL NIL "<B27397-0100000@cac.washington.edu>")'
    )
    assert (
        format_bodystructure(info, False)
        == b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 14 2)'
    )
    assert format_bodystructure(info, True) == (
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 14 2 NIL NIL NIL NIL)'
    )


def test_plain_sections() -> None:
    info = analyze(PLAIN)
    header = PLAIN[: info["header_length"]]
    assert section_bytes(PLAIN, info, Section()) == PLAIN
    assert section_bytes(PLAIN, info, Section((), "HEADER")) == header
    assert header.endswith(b"\r\n\r\n")
    assert section_bytes(PLAIN, info, Section((), "TEXT")) == b"Hello\r\nworld\r\n"
    assert section_bytes(PLAIN, info, Section((1,))) == b"Hello\r\nworld\r\n"
    assert section_bytes(PLAIN, info, Section((2,))) == b""
    assert section_bytes(PLAIN, info, Section((), "HEADER.FIELDS", ("SUBJECT", "CC"))) == (
        b"Subject: =?ISO-8859-1?Q?Caf=E9?= IMAP4rev2\r\n"
        b'cc: minutes@CNRI.Reston.VA.US,\r\n  "John Klensin" <KLENSIN@MIT.EDU>\r\n\r\n'
    )
    not_fields = section_bytes(
        PLAIN, info, Section((), "HEADER.FIELDS.NOT", ("DATE", "FROM", "CC"))
    )
    assert not_fields == (
        b"Subject: =?ISO-8859-1?Q?Caf=E9?= IMAP4rev2\r\nTo: imap@cac.washington.edu\r\n"
        b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n\r\n"
    )


def test_nested_multipart_structure() -> None:
    info = analyze(MIXED)
    assert json.loads(json.dumps(info)) == info
    body = info["body"]
    assert [p["type"] + "/" + p["subtype"] for p in body["parts"]] == [
        "multipart/alternative", "application/pdf", "message/rfc822",
    ]  # fmt: skip
    assert format_bodystructure(info, True) == (
        b'((("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "8BIT" 16 1 NIL NIL NIL NIL)'
        b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 22 1 NIL NIL NIL NIL) "ALTERNATIVE" '
        b'("BOUNDARY" "inner") NIL NIL NIL)'
        b'("APPLICATION" "PDF" ("NAME" "cr.pdf") "<pdf1@x>" NIL "BASE64" 12 NIL '
        b'("ATTACHMENT" ("FILENAME" "cr.pdf")) ("fr") NIL)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 51 '
        b'(NIL "fwd" ((NIL NIL "inner" "example.org")) ((NIL NIL "inner" "example.org")) '
        b'((NIL NIL "inner" "example.org")) NIL NIL NIL NIL NIL) '
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL) 4 '
        b"NIL NIL NIL NIL) "
        b'"MIXED" ("BOUNDARY" "outer") NIL NIL NIL)'
    )
    assert format_bodystructure(info, False).startswith(
        b'((("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "8BIT" 16 1)("TEXT" "HTML"'
    )


def test_nested_multipart_sections_byte_exact() -> None:
    info = analyze(MIXED)

    def sec(*part: int, text: str | None = None) -> bytes:
        return section_bytes(MIXED, info, Section(part, text))

    assert sec(1, 1) == b"R\xc3\xa9sultat normal"
    assert sec(1, 2) == b"<p>R&eacute;sultat</p>"
    assert (
        sec(1, 1, text="MIME")
        == b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    assert sec(2) == b"JVBERi0xLjQK"
    assert sec(3, text="HEADER") == b"From: inner@example.org\r\nSubject: fwd\r\n\r\n"
    assert sec(3, text="TEXT") == b"inner body"
    assert sec(3, 1) == b"inner body"
    assert sec(3) == b"From: inner@example.org\r\nSubject: fwd\r\n\r\ninner body"
    assert sec(3, text="MIME") == b"Content-Type: message/rfc822\r\n\r\n"
    assert sec(2, text="HEADER") == b""  # not a message/rfc822 part
    assert sec(4) == b"" and sec(1, 3) == b"" and sec(2, 1) == b""
    assert binary_bytes(MIXED, info, (2,)) == b"%PDF-1.4\n"
    assert binary_bytes(MIXED, info, (1, 1)) == "Résultat normal".encode()


def test_groups_and_odd_addresses() -> None:
    raw = (
        b"From: undisclosed-recipients:;\r\n"
        b'To: Team: alice@x.org, "Bob B." <bob@y.org>;, carol\r\n'
        b"Cc: <@relay.net:dave@z.org> (comment), Eve (old style) <eve@w.org>\r\n\r\n"
    )
    env = analyze(raw)["envelope"]
    assert env["from"] == [[None, None, "undisclosed-recipients", None], [None, None, None, None]]
    assert env["to"] == [
        [None, None, "Team", None],
        [None, None, "alice", "x.org"],
        ["Bob B.", None, "bob", "y.org"],
        [None, None, None, None],
        [None, None, "carol", "MISSING_DOMAIN"],
    ]
    assert env["cc"] == [[None, "@relay.net", "dave", "z.org"], ["Eve", None, "eve", "w.org"]]


def test_8bit_utf8_headers_and_body() -> None:
    raw = "Subject: Compte rendu d'échographie\r\nFrom: Dr Müller <m@h.fr>\r\n\r\nÉté\r\n".encode()
    info = analyze(raw)
    assert info["envelope"]["subject"] == "Compte rendu d'échographie"
    env = format_envelope(info)
    assert b"{27}\r\nCompte rendu d'\xc3\xa9chographie" in env  # literal without UTF-8
    assert '"Compte rendu d\'échographie"'.encode() in format_envelope(info, utf8=True)
    assert section_bytes(raw, info, Section((1,))) == "Été\r\n".encode()


def test_malformed_mime_falls_back_to_text_plain() -> None:
    cases = [
        b"Content-Type: multipart/mixed\r\n\r\nno boundary\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\nno delimiter at all\r\n',
        b"Content-Type: garbage\r\n\r\nbody\r\n",
        b"Content-Type: text/\r\n\r\nbody\r\n",
        b"no header at all, no blank line",
        b"",
        b"\r\nbody only\r\n",
    ]
    for raw in cases:
        info = analyze(raw)
        assert info["body"]["type"] == "text" and info["body"]["subtype"] == "plain", raw
        format_bodystructure(info, True)
        format_envelope(info)


def test_unterminated_multipart_keeps_last_part() -> None:
    raw = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo'
    info = analyze(raw)
    assert len(info["body"]["parts"]) == 2
    assert section_bytes(raw, info, Section((2,))) == b"two"


def test_deep_nesting_is_bounded() -> None:
    raw = b""
    for i in range(200):
        raw += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
    raw += b"\r\nleaf\r\n"
    info = analyze(raw)
    format_bodystructure(info, True)


@settings(max_examples=300, deadline=1000)
@given(st.binary(max_size=600))
def test_any_bytes_analyze_and_format(raw: bytes) -> None:
    info = analyze(b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n' + raw)
    json.dumps(info)
    format_bodystructure(info, True)
    format_envelope(info)
    info = analyze(raw)
    json.dumps(info)
    format_bodystructure(info, False)
