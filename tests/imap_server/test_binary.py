"""BINARY (RFC 3516, RFC 9051 §6.4.5): decoded parts, literal8 when they hold NUL, sizes."""

from __future__ import annotations

import pytest

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import (
    QP_BODY_DECODED,
    QP_MESSAGE,
    REPORT,
    REPORT_PDF,
    REPORT_TEXT,
    crlf,
)

UUENCODED = crlf(
    "From: Alice Martin <alice@hygie.test>\n"
    "Subject: Odd encoding\n"
    "MIME-Version: 1.0\n"
    "Content-Type: application/octet-stream\n"
    "Content-Transfer-Encoding: x-no-such-encoding\n"
    "\n"
    "begin 644 data\n"
)


@pytest.fixture
def messages(tc: Script) -> Script:
    tc.append("INBOX", REPORT)
    tc.append("INBOX", QP_MESSAGE)
    tc.append("INBOX", UUENCODED)
    tc.C("s1 SELECT INBOX")
    tc.S("* 3 EXISTS", "s1 OK …")
    return tc


def test_base64_attachment_is_decoded_as_literal8(messages: Script) -> None:
    tc = messages
    tc.C("a1 FETCH 1 (BINARY.PEEK[2])")
    # The PDF holds NUL octets: literal8 is mandatory (RFC 3516 §4.3).
    reply = tc.S(f"* 1 FETCH (BINARY[2] ~{{{len(REPORT_PDF)}}}\r\n…)", "a1 OK …")
    assert reply.literals == [REPORT_PDF]


def test_binary_size(messages: Script) -> None:
    tc = messages
    tc.C("a1 FETCH 1 (BINARY.SIZE[2] BINARY.SIZE[1.1])")
    tc.S(
        f"* 1 FETCH (BINARY.SIZE[2] {len(REPORT_PDF)} BINARY.SIZE[1.1] {len(REPORT_TEXT)})",
        "a1 OK …",
    )
    tc.C("a2 FETCH 2 (BINARY.SIZE[1])")
    tc.S(f"* 2 FETCH (BINARY.SIZE[1] {len(QP_BODY_DECODED)})", "a2 OK …")


def test_quoted_printable_single_part(messages: Script) -> None:
    tc = messages
    tc.C("a1 FETCH 2 (BINARY.PEEK[1])")
    reply = tc.S("* 2 FETCH (BINARY[1] {:~?\\{\\d+\\}}\r\n…)", "a1 OK …")
    assert reply.literals == [QP_BODY_DECODED]


def test_partial(messages: Script) -> None:
    tc = messages
    tc.C("a1 FETCH 2 (BINARY.PEEK[1]<0.4>)")
    reply = tc.S("* 2 FETCH (BINARY[1]<0> {:~?\\{4\\}}\r\n…)", "a1 OK …")
    assert reply.literals == [QP_BODY_DECODED[:4]]


def test_binary_sets_seen(messages: Script) -> None:
    tc = messages
    tc.C("a1 FETCH 2 (BINARY[1])")
    tc.S("* 2 FETCH (…\\Seen…)", "a1 OK …")


def test_unknown_transfer_encoding(messages: Script) -> None:
    tc = messages
    tc.C("a1 FETCH 3 (BINARY.PEEK[1])")
    tc.S("a1 NO [UNKNOWN-CTE] …")


QP_PADDED = crlf(
    "From: Alice Martin <alice@hygie.test>\n"
    "Subject: Padded lines\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "hello   \n"
    "foo=09bar =\n"
    "baz=3D=20\t\n"
)


def test_quoted_printable_drops_transport_padding(tc: Script) -> None:
    # RFC 2045 §6.7 rule 3: white space ending an encoded line is deleted when decoding.
    tc.append("INBOX", QP_PADDED)
    tc.C("s1 SELECT INBOX")
    tc.S("s1 OK …")
    decoded = b"hello\r\nfoo\tbar baz= \r\n"
    tc.C("a1 FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])")
    reply = tc.S(f"* 1 FETCH (BINARY.SIZE[1] {len(decoded)} BINARY[1] …)", "a1 OK …")
    assert reply.literals == [decoded]


BINARY_APPEND = (
    b"From: Alice Martin <alice@hygie.test>\r\n"
    b"Subject: Binary attachment\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"See attached.\r\n"
    b"--b1\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"\r\n" + REPORT_PDF + b"\r\n"
    b"--b1--\r\n"
)


def test_append_of_literal8_is_stored_in_a_7bit_encoding(tc: Script) -> None:
    # RFC 3516 §4.4: the binary part is kept in base64; BINARY[2] gives back the octets.
    tc.C(f"a1 APPEND INBOX ~{{{len(BINARY_APPEND)}}}")
    tc.S("+ …")
    tc.send(BINARY_APPEND + b"\r\n")
    tc.S("a1 OK [APPENDUID …] …")
    tc.C("s1 SELECT INBOX")
    tc.S("s1 OK …")
    tc.C("a2 FETCH 1 (BODY.PEEK[2] BODY.PEEK[2.MIME])")
    reply = tc.S("* 1 FETCH (…)", "a2 OK …")
    body, mime = reply.literals
    assert b"\x00" not in body and body.strip().isascii()
    assert b"Content-Transfer-Encoding: base64" in mime
    tc.C("a3 FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])")
    reply = tc.S(f"* 1 FETCH (BINARY[2] ~{{{len(REPORT_PDF)}}}\r\n…)", "a3 OK …")
    assert reply.literals == [REPORT_PDF]
    tc.C("a4 FETCH 1 (BODY.PEEK[1])")
    reply = tc.S("* 1 FETCH (BODY[1] …)", "a4 OK …")
    assert reply.literals == [b"See attached."]
