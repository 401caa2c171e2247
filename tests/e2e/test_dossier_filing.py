"""Filing documents from messages (issue 7 items 3–4): an IHE_XDM.zip sent to a patient's
address, or to the operator's dmp@ address, is filed in the patient's read-only Dossier
folder; the sender gets an MDN (processed, or processed/error with the MSSanté codes 900–906);
INVISIBLE_PATIENT documents reach neither the patient's INBOX nor the Dossier folder; "annule et
remplace" replaces."""

from __future__ import annotations

import email
import email.policy
import imaplib
import re
import smtplib
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage

import pytest

from bench.harness import ServerProcess
from dossier.cda import (
    LOINC_OID,
    Author,
    CdaDocument,
    Code,
    Custodian,
    PatientIdentity,
    build_cda,
    new_document_id,
)
from dossier.ins import NIR_OID, Ins
from dossier.subject import mss_document_headers
from dossier.xdm import INVISIBLE_PATIENT, OutgoingDocument, build_xdm, parse_xdm
from mailformats.mdn import parse_mdn
from tests.support.servers import start_server, stop_server

INS = "279035121518989"
PATIENT = f"{INS}@patient.hygie.test"
OTHER_INS = "180127512345642"
DOCTOR = "paul.martin@hygie.test"
PASSWORD = "dossier-test-password-1"
PDF = b"%PDF-1.4\n% Hygie test document\n%%EOF\n"
CONSULTATION = Code("11488-4", LOINC_OID, "Compte rendu de consultation")


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, "sqlite", {DOCTOR: PASSWORD, PATIENT: PASSWORD})
    yield srv
    stop_server(srv)


def cda(
    ins: str = INS,
    *,
    code: Code = CONSULTATION,
    idnat: str = "810001234567",
    document_id: tuple[str, str | None] | None = None,
    set_id: tuple[str, str | None] | None = None,
    version: int = 1,
    replaces: tuple[str, str | None] | None = None,
) -> CdaDocument:
    return CdaDocument(
        code=code, title="Consultation de cardiologie",
        patient=PatientIdentity(Ins(ins, NIR_OID), "DUPONT", ("Marie",), date(1979, 3, 12), "F"),
        author=Author(idnat, "MARTIN", "Paul", "Dr", "Hôpital Hygie"),
        custodian=Custodian("Hôpital Hygie"),
        effective_time=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
        document_id=document_id or new_document_id(), set_id=set_id, version_number=version,
        replaces=replaces,
    )  # fmt: skip


def xdm_message(doc: CdaDocument, to: str, subject: str, *, receipt: bool = True,
                restrictions: frozenset[str] = frozenset(),
                codecda: str | None = None) -> bytes:  # fmt: skip
    archive = build_xdm(
        [OutgoingDocument(build_cda(doc, pdf=PDF), restrictions=restrictions, pdf=PDF)],
        source_id="1.2.250.1.999.1",
    )
    message = EmailMessage()
    message["From"] = DOCTOR
    message["To"] = to
    message["Subject"] = subject
    message["X-MSS-NIL"] = "HYGIE-TEST"
    for name, value in mss_document_headers(parse_xdm(archive), ins_qualified=True).items():
        message[name] = codecda if name == "X-MSS-CODECDA" and codecda else value
    if receipt:
        message["Disposition-Notification-To"] = DOCTOR
    message.set_content("Veuillez trouver le compte rendu ci-joint.")
    message.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.zip")
    return message.as_bytes(policy=email.policy.SMTP)


def send(server: ServerProcess, to: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(DOCTOR, PASSWORD)
        smtp.sendmail(DOCTOR, [to], raw)


def imap(server: ServerProcess, user: str) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL("localhost", server.imap_tls_port, ssl_context=server.ssl_context())
    client.login(user, PASSWORD)
    return client


def subjects(server: ServerProcess, user: str, folder: str) -> list[str]:
    client = imap(server, user)
    typ, _ = client.select(folder, readonly=True)
    if typ != "OK":
        client.logout()
        return []
    _, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    client.logout()
    out = []
    for item in data:
        if isinstance(item, tuple):
            header = email.message_from_bytes(item[1], policy=email.policy.default)
            out.append(str(header["Subject"]))
    return out


def receipts(server: ServerProcess, after: int, timeout: float = 20) -> list[bytes]:
    """The doctor's messages from number ``after`` on, waiting until at least one is there."""
    deadline = time.monotonic() + timeout
    while True:
        client = imap(server, DOCTOR)
        _, data = client.select("INBOX")
        count = int(data[0] or 0)
        if count > after:
            _, fetched = client.fetch(f"{after + 1}:*", "(BODY.PEEK[])")
            client.logout()
            return [i[1] for i in fetched if isinstance(i, tuple)]
        client.logout()
        assert time.monotonic() < deadline, "no receipt came back"
        time.sleep(0.3)


def inbox_count(server: ServerProcess, user: str) -> int:
    client = imap(server, user)
    _, data = client.select("INBOX", readonly=True)
    client.logout()
    return int(data[0] or 0)


def test_filed_and_acknowledged(server: ServerProcess) -> None:
    before = inbox_count(server, DOCTOR)
    send(server, PATIENT, xdm_message(cda(), PATIENT, "Compte rendu"))
    (notice,) = receipts(server, before)
    info = parse_mdn(notice)
    assert info.disposition_type == "processed" and info.error_code is None
    filed = subjects(server, PATIENT, "Dossier")
    assert filed == ["XDM/1.0/DDM+CR de consultation DUPONT Marie 12/03/1979"]
    assert "Compte rendu" in subjects(server, PATIENT, "INBOX")
    # The Dossier message carries the PDF, named by the convention, and the CDA.
    client = imap(server, PATIENT)
    client.select("Dossier", readonly=True)
    _, fetched = client.fetch("1", "(BODY.PEEK[])")
    message = email.message_from_bytes(fetched[0][1], policy=email.policy.default)
    names = [p.get_filename() for p in message.iter_attachments()]
    assert names == ["20261120_CR-de-consultation_DUPONT_Marie_1.pdf", "DOC0001.XML"]
    client.logout()


def test_dossier_folder_is_read_only(server: ServerProcess) -> None:
    send(server, PATIENT, xdm_message(cda(), PATIENT, "Pour le dossier", receipt=False))
    client = imap(server, PATIENT)
    # Selected read-write, the server answers [READ-ONLY]; imaplib says so.
    with pytest.raises(imaplib.IMAP4.readonly):
        client.select("Dossier")
    client.shutdown()
    client = imap(server, PATIENT)
    typ, data = client.append("Dossier", "", imaplib.Time2Internaldate(time.time()),
                               b"Subject: x\r\n\r\ny\r\n")  # fmt: skip
    assert typ == "NO" and b"read-only" in data[0]
    typ, _ = client.delete("Dossier")
    assert typ == "NO"
    client.logout()
    assert "dossier.open" in server.hygie("audit", "--action", "dossier.").stdout.decode()


def test_invisible_to_the_patient(server: ServerProcess) -> None:
    """Filed (the MDN says processed) but in no folder of the patient: neither the INBOX nor
    the Dossier folder (tests/conformance/test_case_17_* follows it to every other view)."""
    inbox = inbox_count(server, PATIENT)
    filed = len(subjects(server, PATIENT, "Dossier"))
    before = inbox_count(server, DOCTOR)
    send(server, PATIENT, xdm_message(cda(), PATIENT, "Document masqué",
                                      restrictions=frozenset({INVISIBLE_PATIENT})))  # fmt: skip
    (notice,) = receipts(server, before)
    assert parse_mdn(notice).error_code is None
    assert inbox_count(server, PATIENT) == inbox
    assert len(subjects(server, PATIENT, "Dossier")) == filed


def test_dmp_address_files_without_delivering(server: ServerProcess) -> None:
    filed = len(subjects(server, PATIENT, "Dossier"))
    before = inbox_count(server, DOCTOR)
    send(server, "dmp@hygie.test", xdm_message(cda(), "dmp@hygie.test", "Pour le DMP"))
    (notice,) = receipts(server, before)
    assert parse_mdn(notice).error_code is None
    assert len(subjects(server, PATIENT, "Dossier")) == filed + 1
    assert "Pour le DMP" not in subjects(server, PATIENT, "INBOX")


def error_code(server: ServerProcess, to: str, raw: bytes) -> tuple[int | None, str]:
    before = inbox_count(server, DOCTOR)
    send(server, to, raw)
    notice = receipts(server, before)[-1]
    subject = str(email.message_from_bytes(notice, policy=email.policy.default)["Subject"])
    return parse_mdn(notice).error_code, subject


def test_integration_errors(server: ServerProcess) -> None:
    filed = len(subjects(server, PATIENT, "Dossier"))
    dmp = "dmp@hygie.test"
    code, subject = error_code(server, dmp, xdm_message(cda(OTHER_INS), dmp, "Inconnu"))
    assert code == 902 and subject.startswith("[KO Intégration système !][902]")
    # Another patient's document never reaches this patient's mailbox (MSSanté test case 13).
    with pytest.raises(smtplib.SMTPDataError) as caught:
        send(server, PATIENT, xdm_message(cda(OTHER_INS), PATIENT, "Autre"))
    assert caught.value.smtp_code == 550 and b"own address" in caught.value.smtp_error
    odd = Code("99999-9", LOINC_OID, "Type inconnu")
    code, _ = error_code(server, PATIENT, xdm_message(cda(code=odd), PATIENT, "Type"))
    assert code == 906
    assert len(subjects(server, PATIENT, "Dossier")) == filed  # nothing filed


def test_annule_et_remplace(server: ServerProcess) -> None:
    first = cda()
    send(server, PATIENT, xdm_message(first, PATIENT, "Version 1", receipt=False))
    time.sleep(0.5)
    filed = len(subjects(server, PATIENT, "Dossier"))
    v2 = cda(set_id=first.document_id, version=2, replaces=first.document_id)
    code, _ = error_code(server, PATIENT, xdm_message(v2, PATIENT, "Version 2"))
    assert code is None
    assert len(subjects(server, PATIENT, "Dossier")) == filed  # v2 took v1's place
    # Another author may not replace it (901); replacing a version not on file is 900.
    v3 = cda(idnat="810009999999", set_id=first.document_id, version=3,
             replaces=v2.document_id)  # fmt: skip
    code, _ = error_code(server, PATIENT, xdm_message(v3, PATIENT, "Version 3"))
    assert code == 901
    ghost = cda(replaces=new_document_id(), version=2)
    code, _ = error_code(server, PATIENT, xdm_message(ghost, PATIENT, "Fantôme"))
    assert code == 900


def test_error_without_receipt_request_gets_the_error_mail(server: ServerProcess) -> None:
    before = inbox_count(server, DOCTOR)
    send(server, "dmp@hygie.test",
         xdm_message(cda(OTHER_INS), "dmp@hygie.test", "Sans accusé", receipt=False))  # fmt: skip
    notice = receipts(server, before)[-1]
    message = email.message_from_bytes(notice, policy=email.policy.default)
    assert str(message["Subject"]).startswith("[KO Intégration système !][902]")
    assert message.get_content_type() == "multipart/mixed"


def test_x_mss_headers_must_match_the_attachment(server: ServerProcess) -> None:
    wrong = xdm_message(cda(), PATIENT, "En-têtes faux", codecda="18748-4")
    with pytest.raises(smtplib.SMTPDataError) as caught:
        send(server, PATIENT, wrong)
    assert (
        caught.value.smtp_code == 554 and b"X-MSS-CODECDA says 18748-4" in caught.value.smtp_error
    )
    plain = xdm_message(cda(), PATIENT, "Sans en-têtes")
    stripped = b"\r\n".join(
        line
        for line in plain.split(b"\r\n")
        if not line.startswith((b"X-MSS-CODECDA", b"X-MSS-INS"))
    )
    with pytest.raises(smtplib.SMTPDataError) as caught:
        send(server, PATIENT, stripped)
    assert b"X-MSS-CODECDA and X-MSS-INS are required" in caught.value.smtp_error


def test_cda_without_ins_is_903(server: ServerProcess) -> None:
    from tests.dossier.archives import DOC1, members, replace_document

    message = email.message_from_bytes(
        xdm_message(cda(), PATIENT, "Sans INS"), policy=email.policy.SMTP
    )
    part = next(p for p in message.walk() if p.get_filename() == "IHE_XDM.zip")
    archive = part.get_payload(decode=True)
    document = members(archive)[DOC1]
    stripped = re.sub(rb'<id [^>]*root="1\.2\.250\.1\.213\.1\.4\.8"[^>]*/>', b"", document)
    assert stripped != document
    part.set_content(replace_document(archive, DOC1, stripped), maintype="application",
                     subtype="zip", filename="IHE_XDM.zip")  # fmt: skip
    code, subject = error_code(server, PATIENT, message.as_bytes())
    assert code == 903 and "[903]" in subject
