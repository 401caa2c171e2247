"""Message Disposition Notifications (RFC 8098) with the MSSanté integration errors 900-906."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailformats import mdn
from mailformats.mdn import IntegrationError, MdnSyntaxError

WHEN = datetime(2024, 2, 19, 23, 19, tzinfo=UTC)
SUBJECT = "XDM/1.0/DDM+ECHOGRAPHIE ABDOMINOPELVIENNE CORSE FIGATELLIX 12/10/1988"

# The volet's example, with an IHE_XDM.zip and a PDF (contents shortened).
ORIGINAL = (
    "Return-Path: <serviceY@chb.mssante.test>\r\n"
    "Date: Mon, 19 Feb 2024 23:01:00 +0100\r\n"
    "From: serviceY@chb.mssante.test\r\n"
    "To: serviceY_auto@chb.mssante.test\r\n"
    "Message-ID: <20240219230100.23456@chb.mssante.test>\r\n"
    f"Subject: {SUBJECT}\r\n"
    "Disposition-Notification-To: serviceY@chb.mssante.test\r\n"
    "X-MSS-NIL: 1\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="ZZZ09876.543210987"\r\n'
    "\r\n"
    "--ZZZ09876.543210987\r\n"
    'Content-Type: text/plain; charset="UTF-8"\r\n'
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Compte rendu d'échographie ci-joint.\r\n"
    "\r\n"
    "--ZZZ09876.543210987\r\n"
    'Content-Type: application/zip; name="IHE_XDM.zip"\r\n'
    "Content-Transfer-Encoding: base64\r\n"
    'Content-Disposition: attachment; filename="IHE_XDM.zip"\r\n'
    "\r\n"
    "UEsDBBQAAAAIAA==\r\n"
    "\r\n"
    "--ZZZ09876.543210987\r\n"
    'Content-Type: application/pdf; name="CR.pdf"\r\n'
    "Content-Transfer-Encoding: base64\r\n"
    'Content-Disposition: attachment; filename="CR.pdf"\r\n'
    "\r\n"
    "JVBERi0xLjQK\r\n"
    "\r\n"
    "--ZZZ09876.543210987--\r\n"
).encode()


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def headers(text: str) -> Message:
    return parse(text.replace("\n", "\r\n").encode())


def build(**kw: object) -> bytes:
    args: dict[str, object] = {
        "original": ORIGINAL,
        "reporting_ua": "pfi.chb.mssante.test; Hygie",
        "from_address": "serviceY_auto@chb.mssante.test",
        "to_address": "serviceY@chb.mssante.test",
        "final_recipient": "serviceY_auto@chb.mssante.test",
        "message_id_domain": "chb.mssante.test",
        "now": WHEN,
    }
    args.update(kw)
    return mdn.build_mdn(**args)  # type: ignore[arg-type]


def notification(message: EmailMessage) -> Message:
    part = list(message.iter_parts())[1]
    assert part.get_content_type() == "message/disposition-notification"
    payload = part.get_payload()
    assert isinstance(payload, list)
    fields = payload[0]
    assert isinstance(fields, Message)
    return fields


# --- the integration errors -----------------------------------------------------------------


def test_the_seven_mssante_codes() -> None:
    assert sorted(mdn.INTEGRATION_ERRORS) == list(range(900, 907))
    assert mdn.UNKNOWN_PATIENT == IntegrationError(902, "Identifiant de patient inconnu")
    assert mdn.UNKNOWN_PATIENT.hl7 == "902^Identifiant de patient inconnu"
    assert mdn.VERSION_MISMATCH.code == 900
    assert mdn.AUTHOR_NOT_ALLOWED.text.startswith("Auteur non autorisé")
    assert mdn.INS_MISSING.text == "INS non présent dans le document"
    assert mdn.INS_INCOMPLETE.code == 905
    assert mdn.OTHER.code == 906


@pytest.mark.parametrize(("code", "text"), [(899, "x"), (907, "x"), (902, ""), (906, "a^b")])
def test_integration_error_is_checked(code: int, text: str) -> None:
    with pytest.raises(ValueError):
        IntegrationError(code, text)


# --- when an automatic MDN may be sent (RFC 8098 §2.1) --------------------------------------


def test_target_when_the_request_matches_the_return_path() -> None:
    original = parse(ORIGINAL)
    target = mdn.automatic_mdn_target(original, "<serviceY@chb.mssante.test>")
    assert target == "serviceY@chb.mssante.test"


@pytest.mark.parametrize(
    ("dnt", "return_path"),
    [
        ("Service Y <serviceY@chb.mssante.test>", "serviceY@chb.mssante.test"),
        ("serviceY@CHB.mssante.test", "<serviceY@chb.mssante.test>"),
        ('"serviceY"@chb.mssante.test', "serviceY@chb.mssante.test"),
    ],
)
def test_target_compares_addr_specs_only(dnt: str, return_path: str) -> None:
    message = headers(f"From: x@y.test\nDisposition-Notification-To: {dnt}\n\nbody\n")
    assert mdn.automatic_mdn_target(message, return_path) is not None


@pytest.mark.parametrize(
    ("text", "return_path"),
    [
        # no request
        ("From: a@hygie.test\n", "a@hygie.test"),
        # request differs from the Return-Path: the loop-prevention rule
        ("Disposition-Notification-To: other@hygie.test\n", "a@hygie.test"),
        ("Disposition-Notification-To: a@hygie.test\n", "a@other.test"),
        # local parts compare case-sensitively (RFC 8098 §2.1)
        ("Disposition-Notification-To: A@hygie.test\n", "a@hygie.test"),
        # null or missing Return-Path
        ("Disposition-Notification-To: a@hygie.test\n", "<>"),
        ("Disposition-Notification-To: a@hygie.test\n", ""),
        # several addresses, or several fields
        ("Disposition-Notification-To: a@hygie.test, b@hygie.test\n", "a@hygie.test"),
        (
            "Disposition-Notification-To: a@hygie.test\n"
            "Disposition-Notification-To: a@hygie.test\n",
            "a@hygie.test",
        ),
        # an MDN or a DSN is never answered
        (
            "Disposition-Notification-To: a@hygie.test\n"
            "Content-Type: multipart/report; report-type=disposition-notification; boundary=x\n",
            "a@hygie.test",
        ),
        (
            "Disposition-Notification-To: a@hygie.test\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=x\n",
            "a@hygie.test",
        ),
        # nor an auto-submitted message (RFC 3834)
        (
            "Disposition-Notification-To: a@hygie.test\nAuto-Submitted: auto-replied\n",
            "a@hygie.test",
        ),
        (
            "Disposition-Notification-To: a@hygie.test\nAuto-Submitted: auto-generated\n",
            "a@hygie.test",
        ),
        # junk
        ("Disposition-Notification-To: not an address\n", "a@hygie.test"),
        ("Disposition-Notification-To: <>\n", "<>"),
    ],
)
def test_no_automatic_mdn(text: str, return_path: str) -> None:
    message = headers(text + "\nbody\n")
    assert mdn.automatic_mdn_target(message, return_path) is None


def test_auto_submitted_no_is_not_automatic() -> None:
    message = headers("Disposition-Notification-To: a@hygie.test\nAuto-Submitted: no\n\nbody\n")
    assert mdn.automatic_mdn_target(message, "a@hygie.test") == "a@hygie.test"


@given(st.text(), st.text())
def test_target_never_raises(dnt: str, return_path: str) -> None:
    message = Message()
    try:
        message["Disposition-Notification-To"] = dnt
    except ValueError:  # the stdlib refuses some values outright
        return
    target = mdn.automatic_mdn_target(message, return_path)
    assert target is None or ("\n" not in target and "\r" not in target)


# --- building and reading ---------------------------------------------------------------------


def test_success_mdn() -> None:
    raw = build()
    message = parse(raw)
    assert message["From"] == "serviceY_auto@chb.mssante.test"
    assert message["To"] == "serviceY@chb.mssante.test"
    assert message["Subject"] == SUBJECT  # the volet: a successful MDN keeps the subject
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Date"].datetime == WHEN
    assert re.fullmatch(r"<[0-9a-f]{24}@chb\.mssante\.test>", message["Message-ID"])
    assert message["In-Reply-To"] == "<20240219230100.23456@chb.mssante.test>"
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "disposition-notification"
    assert [p.get_content_type() for p in message.iter_parts()] == [
        "text/plain",
        "message/disposition-notification",
        "message/rfc822",
    ]
    fields = notification(message)
    assert fields["Reporting-UA"] == "pfi.chb.mssante.test; Hygie"
    assert fields["Final-Recipient"] == "rfc822;serviceY_auto@chb.mssante.test"
    assert fields["Original-Recipient"] is None  # not known here
    assert fields["Original-Message-ID"] == "<20240219230100.23456@chb.mssante.test>"
    assert fields["Disposition"] == "automatic-action/MDN-sent-automatically; processed"
    assert fields["Error"] is None

    info = mdn.parse_mdn(raw)
    assert info.original_message_id == "<20240219230100.23456@chb.mssante.test>"
    assert info.disposition_type == "processed"
    assert info.error_code is None
    assert info.error_text is None
    assert info.final_recipient == "rfc822;serviceY_auto@chb.mssante.test"


def test_unknown_patient_mdn() -> None:
    raw = build(error=mdn.UNKNOWN_PATIENT)
    message = parse(raw)
    assert message["Subject"] == f"[KO Intégration système !][902] {SUBJECT}"
    assert "=?utf-8?" in raw.split(b"\r\n\r\n")[0].decode("ascii")  # RFC 2047 on the wire
    fields = notification(message)
    assert fields["Disposition"] == "automatic-action/MDN-sent-automatically; processed/error"
    assert fields["Error"] == "902^Identifiant de patient inconnu"
    text = next(message.iter_parts())
    assert isinstance(text, EmailMessage)
    body = text.get_content()
    assert "Identifiant de patient inconnu" in body
    assert "902" in body

    info = mdn.parse_mdn(raw)
    assert info.error_code == 902
    assert info.error_text == "902^Identifiant de patient inconnu"
    assert info.disposition_type == "processed"


def test_legacy_error_form_puts_the_code_in_the_disposition() -> None:
    raw = build(error=mdn.UNKNOWN_PATIENT, legacy_error_form=True)
    fields = notification(parse(raw))
    assert fields["Disposition"] == (
        "automatic-action/MDN-sent-automatically; "
        "processed/Error: 902^Identifiant de patient inconnu"
    )
    assert fields["Error"] == "902^Identifiant de patient inconnu"
    assert mdn.parse_mdn(raw).error_code == 902


def test_parse_reads_the_volets_older_example() -> None:
    # The volet's v1 example, as another operator may still send it: no Error field.
    raw = (
        "From: serviceY_auto@chb.mssante.test\r\n"
        "Subject: [KO Intégration système !][902] XDM/1.0/DDM+ECHO\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=disposition-notification;\r\n"
        ' boundary="RAA14128.773615765"\r\n'
        "\r\n"
        "--RAA14128.773615765\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "\r\n"
        "Le document n'a pas pu être intégré.\r\n"
        "--RAA14128.773615765\r\n"
        "Content-Type: message/disposition-notification\r\n"
        "\r\n"
        "Original-Recipient: rfc822;serviceY_auto@chb.mssante.test\r\n"
        "Final-Recipient: rfc822;serviceY_auto@chb.mssante.test\r\n"
        "Original-Message-ID: <20240219230100.23456@chb.mssante.test>\r\n"
        "Disposition:automatic-action/MDN-sent-automatically; processed/Error: "
        "902^Identifiant de patient inconnu^messageErrorCondition| E^Error^errorSeverity\r\n"
        "\r\n"
        "--RAA14128.773615765--\r\n"
    ).encode()
    info = mdn.parse_mdn(raw)
    assert info.error_code == 902
    assert info.error_text is not None
    assert info.error_text.startswith("902^Identifiant de patient inconnu^")
    assert info.original_recipient == "rfc822;serviceY_auto@chb.mssante.test"
    assert info.original_message_id == "<20240219230100.23456@chb.mssante.test>"


@pytest.mark.parametrize("error", list(mdn.INTEGRATION_ERRORS.values()))
def test_every_code_round_trips(error: IntegrationError) -> None:
    raw = build(error=error)
    info = mdn.parse_mdn(raw)
    assert info.error_code == error.code
    assert info.error_text == error.hl7
    assert parse(raw)["Subject"].startswith(f"[KO Intégration système !][{error.code}] ")


def test_the_original_comes_back_whole_with_its_attachments() -> None:
    raw = build(error=mdn.UNKNOWN_PATIENT)
    assert ORIGINAL in raw  # byte for byte
    returned = list(parse(raw).iter_parts())[2]
    inner = returned.get_payload()[0]
    assert isinstance(inner, EmailMessage)
    assert inner["Message-ID"] == "<20240219230100.23456@chb.mssante.test>"
    names = [part.get_filename() for part in inner.iter_attachments()]
    assert names == ["IHE_XDM.zip", "CR.pdf"]
    assert returned["Content-Transfer-Encoding"] == "8bit"


def test_without_the_original() -> None:
    message = parse(build(attach_original=False))
    assert [p.get_content_type() for p in message.iter_parts()] == [
        "text/plain",
        "message/disposition-notification",
    ]


def test_original_recipient_from_the_original_or_the_argument() -> None:
    with_header = b"Original-Recipient: rfc822;Service.Y@chb.mssante.test\r\n" + ORIGINAL
    fields = notification(parse(build(original=with_header)))
    assert fields["Original-Recipient"] == "rfc822;Service.Y@chb.mssante.test"
    fields = notification(parse(build(original_recipient="bal@chb.mssante.test")))
    assert fields["Original-Recipient"] == "rfc822;bal@chb.mssante.test"


def test_manual_displayed_mdn_for_the_client() -> None:
    raw = build(manual=True, disposition_type="displayed")
    fields = notification(parse(raw))
    assert fields["Disposition"] == "manual-action/MDN-sent-manually; displayed"
    assert mdn.parse_mdn(raw).disposition_type == "displayed"


def test_non_ascii_subject_survives() -> None:
    original = ORIGINAL.replace(
        f"Subject: {SUBJECT}".encode(),
        b"Subject: =?utf-8?q?Compte_rendu_d=27=C3=A9chographie?=",
    )
    assert parse(build(original=original))["Subject"] == "Compte rendu d'échographie"
    message = parse(build(original=original, error=mdn.INS_MISMATCH))
    assert message["Subject"] == "[KO Intégration système !][904] Compte rendu d'échographie"


def test_non_ascii_error_label_in_the_notification() -> None:
    fields = notification(parse(build(error=mdn.AUTHOR_NOT_ALLOWED)))
    assert fields["Error"] == "901^Auteur non autorisé à remplacer ou supprimer un document"


def test_only_crlf_line_endings() -> None:
    raw = build(original=ORIGINAL.replace(b"\r\n", b"\n"), error=mdn.UNKNOWN_PATIENT)
    assert re.search(rb"(?<!\r)\n", raw) is None
    assert re.search(rb"\r(?!\n)", raw) is None


def test_original_without_subject_or_message_id() -> None:
    raw = build(original=b"From: a@hygie.test\r\n\r\nhello\r\n")
    message = parse(raw)
    assert message["Subject"] == "Accusé de traitement / Disposition notification"
    assert message["In-Reply-To"] is None
    assert notification(message)["Original-Message-ID"] is None
    assert mdn.parse_mdn(raw).original_message_id is None


@pytest.mark.parametrize(
    "kw",
    [
        {"to_address": "a@hygie.test\r\nBcc: victim@x.test"},
        {"final_recipient": "a@hygie.test\nX: y"},
        {"disposition_type": "read"},
    ],
)
def test_our_own_mistakes_raise_value_error(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build(**kw)


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: hello\r\n\r\nnot a report\r\n",
        b'Content-Type: multipart/report; boundary="b"\r\n\r\n--b\r\n\r\ntext\r\n--b--\r\n',
        b"",
    ],
)
def test_parse_refuses_what_is_not_an_mdn(raw: bytes) -> None:
    with pytest.raises(MdnSyntaxError):
        mdn.parse_mdn(raw)


@given(st.binary(max_size=2000))
def test_parse_only_ever_raises_mdn_syntax_error(raw: bytes) -> None:
    try:
        mdn.parse_mdn(raw)
    except MdnSyntaxError:
        pass


@given(st.text(max_size=300), st.text(max_size=100))
def test_parse_of_any_notification_fields_only_raises_mdn_syntax_error(
    fields: str, disposition: str
) -> None:
    raw = (
        "Content-Type: multipart/report; report-type=disposition-notification; "
        'boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: message/disposition-notification\r\n\r\n"
        f"{fields}\r\nDisposition: {disposition}\r\n"
        "--b--\r\n"
    ).encode("utf-8", "surrogatepass")
    try:
        info = mdn.parse_mdn(raw)
    except MdnSyntaxError:
        return
    assert info.error_code is None or 100 <= info.error_code <= 999


# --- no MDN requested: the volet's "courriel standard" --------------------------------------


def test_error_mail_when_no_mdn_was_requested() -> None:
    raw = mdn.build_error_mail(
        original=ORIGINAL,
        from_address="serviceY_auto@chb.mssante.test",
        to_address="serviceY@chb.mssante.test",
        error=mdn.UNKNOWN_PATIENT,
        message_id_domain="chb.mssante.test",
        now=WHEN,
    )
    message = parse(raw)
    assert message["Subject"] == f"[KO Intégration système !][902] {SUBJECT}"
    assert message.get_content_type() == "multipart/mixed"
    assert message["Auto-Submitted"] == "auto-replied"
    text, attached = message.iter_parts()
    assert isinstance(text, EmailMessage)
    assert "Identifiant de patient inconnu" in text.get_content()
    assert "902" in text.get_content()
    assert attached.get_content_type() == "message/rfc822"
    assert attached.get_filename() == "message_original.eml"
    assert ORIGINAL in raw
    with pytest.raises(MdnSyntaxError):
        mdn.parse_mdn(raw)  # not an MDN: nothing for a machine to read but the subject
