"""MSSanté reference (b) 6, X-MSS headers: "text-only mail → only X-MSS-NIL; 2 CDA →
X-MSS-CODECDA: 11502-2,34112-3; non-qualified INS → X-MSS-INS: N; X-MSS-MES: FIN only when a
patient recipient is in To, Cc or Bcc; CRLF injection in header values is rejected".

Against a running ``hygie serve``: what ``hygie-client send`` writes is read back from the
recipient's mailbox over IMAPS; what the submission listener refuses is a raw SMTP dialogue.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

import pytest

from bench.harness import ServerProcess
from dossier.cda import LOINC_OID, Author, Code, build_cda
from dossier.subject import mss_document_headers
from dossier.xdm import OutgoingDocument, build_xdm, parse_xdm
from tests.conformance.client_support import client_config, fetch_all, hygie_client
from tests.e2e.test_dossier_filing import PDF, cda
from tests.support.servers import settle, start_server, stop_server

pytestmark = pytest.mark.timeout(600)

DOCTOR = "paul.martin@hygie.test"  # the author of tests.e2e.test_dossier_filing's CDA
COLLEAGUE = "claire.martin@hygie.test"
PASSWORD = "case-6-password-1"
INS = "279035121518989"
PATIENT = f"{INS}@patient.hygie.test"
BIOLOGY = Code("11502-2", LOINC_OID, "CR d'examens biologiques")
HOSPITAL = Code("34112-3", LOINC_OID, "CR d'hospitalisation")


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, "sqlite", dict.fromkeys([DOCTOR, COLLEAGUE, PATIENT], PASSWORD))
    yield srv
    stop_server(srv)


@pytest.fixture
def config(server: ServerProcess, tmp_path: Path) -> Path:
    return client_config(tmp_path / "client.toml", server, DOCTOR)


def body(tmp_path: Path, text: str = "Bonjour,\nvoici le résultat.\n") -> Path:
    path = tmp_path / "body.txt"
    path.write_text(text, encoding="utf-8")
    return path


def received(server: ServerProcess, address: str, subject: str) -> EmailMessage:
    settle(server)
    [message] = [m for m in fetch_all(server, address, PASSWORD) if m["Subject"] == subject]
    return message


def mss_fields(message: EmailMessage) -> dict[str, str]:
    return {k.upper(): str(v) for k, v in message.items() if k.upper().startswith("X-MSS-")}


def submit(server: ServerProcess, recipients: list[str], raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(DOCTOR, PASSWORD)
        smtp.sendmail(DOCTOR, recipients, raw)


def test_text_only_mail_carries_only_x_mss_nil(server: ServerProcess, config: Path,
                                               tmp_path: Path) -> None:  # fmt: skip
    proc = hygie_client(config, "send", "--to", COLLEAGUE, "--subject", "Texte seul",
                        "--body-file", str(body(tmp_path)), secret=PASSWORD)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert mss_fields(received(server, COLLEAGUE, "Texte seul")) == {
        "X-MSS-NIL": "HYGIE-CLIENT-0.1.0"
    }


def two_documents(codecda: str | None = None) -> bytes:
    documents = [
        OutgoingDocument(build_cda(replace(cda(), code=code), pdf=PDF), pdf=PDF)
        for code in (BIOLOGY, HOSPITAL)
    ]
    archive = build_xdm(documents, source_id="1.2.250.1.999.1")
    message = EmailMessage()
    message["From"], message["To"] = DOCTOR, COLLEAGUE
    message["Subject"] = f"Deux documents {codecda or ''}".strip()
    for name, value in mss_document_headers(parse_xdm(archive), ins_qualified=True).items():
        message[name] = codecda if name == "X-MSS-CODECDA" and codecda else value
    message.set_content("Deux comptes rendus.")
    message.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.zip")
    return message.as_bytes(policy=SMTP_POLICY)


def test_two_cda_list_both_codes_in_order(server: ServerProcess) -> None:
    submit(server, [COLLEAGUE], two_documents())
    fields = mss_fields(received(server, COLLEAGUE, "Deux documents"))
    assert fields["X-MSS-CODECDA"] == "11502-2,34112-3" and fields["X-MSS-INS"] == "O"
    # The codes must be those of the CDA, in their order: the submission refuses others.
    with pytest.raises(smtplib.SMTPDataError) as caught:
        submit(server, [COLLEAGUE], two_documents("34112-3,11502-2"))
    assert caught.value.smtp_code == 554 and b"X-MSS-CODECDA says" in caught.value.smtp_error


def test_a_non_qualified_ins_is_n(server: ServerProcess, config: Path, tmp_path: Path) -> None:
    document = tmp_path / "cr.xml"
    author = Author("810001234567", "MARTIN", "Paul", "Dr", "Hôpital Hygie")
    document.write_bytes(build_cda(replace(cda(), author=author), pdf=PDF))
    pdf = tmp_path / "cr.pdf"
    pdf.write_bytes(PDF)
    common = ["send", "--to", COLLEAGUE, "--body-file", str(body(tmp_path)), "--patient", INS,
              "--doc-type", "11488-4", "--attach", str(document), "--attach", str(pdf)]  # fmt: skip
    proc = hygie_client(config, *common, "--subject", "INS qualifiée", secret=PASSWORD)
    assert proc.returncode == 0, proc.stderr
    proc = hygie_client(config, *common, "--subject", "INS non qualifiée", "--ins-not-qualified",
                        secret=PASSWORD)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert mss_fields(received(server, COLLEAGUE, "INS qualifiée"))["X-MSS-INS"] == "O"
    fields = mss_fields(received(server, COLLEAGUE, "INS non qualifiée"))
    assert fields["X-MSS-INS"] == "N" and fields["X-MSS-CODECDA"] == "11488-4"


def patient_replies(server: ServerProcess) -> int:
    """The RCPT code of the patient's reply to the doctor."""
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(PATIENT, PASSWORD)
        smtp.mail(PATIENT)
        code, _ = smtp.rcpt(DOCTOR)
        if code == 250:
            smtp.data(f"From: <{PATIENT}>\r\nTo: <{DOCTOR}>\r\nSubject: Re\r\n\r\nMerci\r\n"
                      .encode())  # fmt: skip
        return code


def test_fin_only_with_a_patient_recipient(server: ServerProcess, config: Path,
                                           tmp_path: Path) -> None:  # fmt: skip
    text = str(body(tmp_path))
    # The client writes X-MSS-MES: FIN when asked, and only to a patient.
    refused = hygie_client(config, "send", "--to", COLLEAGUE, "--subject", "x", "--body-file",
                           text, "--end-exchange", secret=PASSWORD)  # fmt: skip
    assert refused.returncode == 2 and "patient recipient" in refused.stderr
    # The server refuses it without a patient among To, Cc and Bcc (the envelope).
    raw = (f"From: <{DOCTOR}>\r\nTo: <{COLLEAGUE}>\r\nSubject: Fin\r\nX-MSS-MES: FIN\r\n\r\n"
           "Fin.\r\n").encode()  # fmt: skip
    with pytest.raises(smtplib.SMTPDataError) as caught:
        submit(server, [COLLEAGUE], raw)
    assert caught.value.smtp_code == 554 and b"no patient recipient" in caught.value.smtp_error
    # A patient in Bcc only is a patient recipient.
    submit(server, [COLLEAGUE, PATIENT], raw.replace(b"Subject: Fin", b"Subject: Fin Bcc"))
    assert mss_fields(received(server, PATIENT, "Fin Bcc"))["X-MSS-MES"] == "FIN"

    assert hygie_client(config, "send", "--to", PATIENT, "--subject", "Vos résultats",
                        "--body-file", text, secret=PASSWORD).returncode == 0  # fmt: skip
    assert patient_replies(server) == 250
    proc = hygie_client(config, "send", "--to", PATIENT, "--subject", "Fin du suivi",
                        "--body-file", text, "--end-exchange", secret=PASSWORD)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert mss_fields(received(server, PATIENT, "Fin du suivi"))["X-MSS-MES"] == "FIN"
    assert patient_replies(server) == 550  # the exchange is closed


@pytest.mark.parametrize("value", [
    "=?utf-8?q?HYGIE=0D=0ABcc:_x@example.org?=",  # an encoded CR LF
    "=?utf-8?b?SFlHSUUKWC1FdmlsOiAx?=",  # "HYGIE\nX-Evil: 1" in base64
])  # fmt: skip
def test_a_line_break_in_an_x_mss_value_is_refused(server: ServerProcess, value: str) -> None:
    raw = (f"From: <{DOCTOR}>\r\nTo: <{COLLEAGUE}>\r\nSubject: Injection\r\n"
           f"X-MSS-NIL: {value}\r\n\r\nx\r\n").encode()  # fmt: skip
    with pytest.raises(smtplib.SMTPDataError) as caught:
        submit(server, [COLLEAGUE], raw)
    assert caught.value.smtp_code == 554 and b"line break" in caught.value.smtp_error
