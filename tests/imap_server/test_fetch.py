"""FETCH (RFC 9051 §6.4.5, RFC 3501 §6.4.5 for the RFC822.* items) on a real-world multipart
message (multipart/mixed ⊃ multipart/alternative + PDF attachment) stored encrypted."""

from __future__ import annotations

import pytest

from tests.imap_server.dialogue import Script, lit, parse_data, same_structure
from tests.imap_server.messages import (
    REPORT,
    REPORT_BODY,
    REPORT_BODYSTRUCTURE,
    REPORT_ENVELOPE,
    REPORT_PDF_MIME,
    REPORT_TEXT,
    header_of,
    text_message,
    text_of,
)


@pytest.fixture
def report(tc: Script) -> Script:
    tc.append("INBOX", REPORT, date="18-Nov-2025 14:05:12 +0100")
    tc.C("s1 SELECT INBOX")
    tc.S("* 1 EXISTS", "s1 OK …")
    return tc


def test_envelope(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 (ENVELOPE)")
    tc.S("* 1 FETCH (ENVELOPE {envelope:.*})", "a1 OK …")
    assert parse_data(tc.vars["envelope"]) == parse_data(REPORT_ENVELOPE)


def test_bodystructure(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 (BODYSTRUCTURE)")
    tc.S("* 1 FETCH (BODYSTRUCTURE {structure:.*})", "a1 OK …")
    assert same_structure(tc.vars["structure"], REPORT_BODYSTRUCTURE), tc.vars["structure"]


def test_body_is_bodystructure_without_extension_data(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 (BODY)")
    tc.S("* 1 FETCH (BODY {structure:.*})", "a1 OK …")
    assert same_structure(tc.vars["structure"], REPORT_BODY), tc.vars["structure"]


def test_a_part_by_number(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 (BODY.PEEK[1.1])")
    tc.S(f"* 1 FETCH (BODY[1.1] {lit(REPORT_TEXT)})", "a1 OK …")


def test_a_partial_part(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 (BODY.PEEK[1.1]<0.8>)")
    tc.S("* 1 FETCH (BODY[1.1]<0> {8}\r\nBonjour,)", "a1 OK …")
    tc.C("a2 FETCH 1 (BODY.PEEK[]<6.4>)")
    tc.S(f"* 1 FETCH (BODY[]<6> {lit(REPORT[6:10])})", "a2 OK …")


def test_partial_beyond_the_end_is_empty(report: Script) -> None:
    tc = report
    tc.C(f"a1 FETCH 1 (BODY.PEEK[]<{len(REPORT) + 10}.10>)")
    tc.S(f'* 1 FETCH (BODY[]<{len(REPORT) + 10}> {{:""|\\{{0\\}}\\r\\n}})', "a1 OK …")


def test_mime_header_of_a_part(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 (BODY.PEEK[2.MIME])")
    tc.S(f"* 1 FETCH (BODY[2.MIME] {lit(REPORT_PDF_MIME)})", "a1 OK …")


def test_header_text_and_whole(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 (BODY.PEEK[HEADER])")
    tc.S(f"* 1 FETCH (BODY[HEADER] {lit(header_of(REPORT))})", "a1 OK …")
    tc.C("a2 FETCH 1 (BODY.PEEK[TEXT])")
    tc.S(f"* 1 FETCH (BODY[TEXT] {lit(text_of(REPORT))})", "a2 OK …")
    tc.C("a3 FETCH 1 (BODY.PEEK[])")
    tc.S(f"* 1 FETCH (BODY[] {lit(REPORT)})", "a3 OK …")


def test_header_fields(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject From)])")
    wanted = (
        b'From: "Dr. Claire Martin" <claire.martin@hygie.test>\r\n'
        b"Subject: Compte rendu echographie\r\n\r\n"
    )
    tc.S(
        f"* 1 FETCH (BODY[HEADER.FIELDS ({{:(?i:subject from)}})] {lit(wanted)})",
        "a1 OK …",
    )


def test_header_fields_not(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Content-Type MIME-Version Message-ID)])")
    tc.S("* 1 FETCH (BODY[HEADER.FIELDS.NOT ({:[^)]*})] {:\\{\\d+\\}}\r\n{fields:.*})", "a1 OK …")
    fields = tc.vars["fields"]
    assert "Subject: Compte rendu echographie\r\n" in fields
    assert "In-Reply-To:" in fields
    assert not any(
        f in fields.lower() for f in ("content-type:", "mime-version:", "message-id:")
    ), fields
    assert fields.endswith("\r\n\r\n")


def test_body_sets_seen_and_peek_does_not(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 (BODY.PEEK[1.2])")
    tc.S("* 1 FETCH (BODY[1.2] …)", "a1 OK …", absent=["* 1 FETCH (…\\Seen…)"])
    tc.C("a2 FETCH 1 (FLAGS)")
    tc.S("* 1 FETCH (FLAGS ())", "a2 OK …")
    tc.C("a3 FETCH 1 (BODY[1.2])")
    tc.S("* 1 FETCH (…\\Seen…)", "a3 OK …")
    tc.C("a4 FETCH 1 (FLAGS)")
    tc.S("* 1 FETCH (FLAGS (\\Seen))", "a4 OK …")


def test_rfc822_items(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 (RFC822.SIZE)")
    tc.S(f"* 1 FETCH (RFC822.SIZE {len(REPORT)})", "a1 OK …")
    tc.C("a2 FETCH 1 (RFC822.HEADER)")
    tc.S(f"* 1 FETCH (RFC822.HEADER {lit(header_of(REPORT))})", "a2 OK …")
    tc.C("a3 FETCH 1 (RFC822.TEXT)")
    tc.S(f"* 1 FETCH (RFC822.TEXT {lit(text_of(REPORT))}…)", "a3 OK …")
    tc.C("a4 FETCH 1 (RFC822)")
    tc.S(f"* 1 FETCH (…RFC822 {lit(REPORT)}…)", "a4 OK …")
    tc.C("a5 FETCH 1 (FLAGS)")
    tc.S("* 1 FETCH (FLAGS (\\Seen))", "a5 OK …")  # RFC822 and RFC822.TEXT set \Seen


def test_fast_macro(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 FAST")
    tc.S(
        f'* 1 FETCH (FLAGS () INTERNALDATE "{{:[^"]+}}" RFC822.SIZE {len(REPORT)})',
        "a1 OK …",
    )


def test_uid_fetch_always_returns_the_uid(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 (UID)")
    tc.S("* 1 FETCH (UID {uid})", "a1 OK …")
    tc.C(f"a2 UID FETCH {tc.vars['uid']} (FLAGS)")
    tc.S("* 1 FETCH ({:.*\\bUID }{uid}{:\\b.*})", "a2 OK …")
    # A UID that does not exist is no error: nothing to return (RFC 9051 §6.4.9).
    tc.C(f"a3 UID FETCH {int(tc.vars['uid']) + 100} (FLAGS)")
    tc.S("a3 OK …", absent=["* {} FETCH …"])


def test_a_sequence_number_beyond_the_mailbox(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 2 (FLAGS)")
    tc.S("a1 {:BAD|NO} …", absent=["* {} FETCH …"])


def subject(text: str) -> bytes:
    return f"Subject: {text}\r\n\r\n".encode()


def test_several_messages_in_one_command(tc: Script) -> None:
    for text in ("One", "Two", "Three"):
        tc.append("INBOX", text_message(text))
    tc.C("a1 SELECT INBOX")
    tc.S("a1 OK …")
    tc.C("a2 FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    tc.S(
        f"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {lit(subject('One'))})",
        f"* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {lit(subject('Two'))})",
        f"* 3 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {lit(subject('Three'))})",
        "a2 OK …",
    )


def test_unknown_item_is_bad(report: Script) -> None:
    tc = report
    tc.C("a1 FETCH 1 (NO-SUCH-ITEM)")
    tc.S("a1 BAD …")
    tc.C("a2 FETCH 1 (BODY[1.x])")
    tc.S("a2 BAD …")
    tc.C("a3 NOOP")
    tc.S("a3 OK …")
