"""A patient's mailbox (issue 7 item 2): professionals write to it; the patient may reply to a
professional who wrote first (only to the MSSanté Reply-To when one is given), never start a
conversation, and no more once the professional ended the exchange (X-MSS-MES: FIN or a "[FIN]"
subject)."""

from __future__ import annotations

import smtplib
import sqlite3
from collections.abc import Iterator

import pytest

from bench.harness import ServerProcess
from tests.support.servers import start_server, stop_server

DOCTOR = "dr.martin@hygie.test"
SECRETARIAT = "secretariat@hygie.test"
OTHER = "dr.autre@hygie.test"
LENOIR = "dr.lenoir@hygie.test"
ACCUEIL = "accueil@hygie.test"
PATIENT = "279035121518989@patient.hygie.test"
PASSWORD = "patient-rules-password-1"


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    accounts = [DOCTOR, SECRETARIAT, OTHER, LENOIR, ACCUEIL, PATIENT]
    srv = start_server(request, "sqlite", dict.fromkeys(accounts, PASSWORD))
    yield srv
    stop_server(srv)


def send(
    server: ServerProcess, sender: str, to: str, subject: str, extra: str = ""
) -> tuple[int, bytes]:
    """(code, text) of RCPT, and the message sent when RCPT was accepted."""
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(sender, PASSWORD)
        smtp.mail(sender)
        code, text = smtp.rcpt(to)
        if code == 250:
            smtp.data(f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n{extra}\r\nx\r\n"
                      .encode())  # fmt: skip
        return code, text


def test_patient_cannot_start_a_conversation(server: ServerProcess) -> None:
    code, text = send(server, PATIENT, OTHER, "Question")
    assert code == 550 and b"reply to a professional who wrote" in text


def test_reply_rules_follow_the_professional(server: ServerProcess) -> None:
    assert (
        send(server, DOCTOR, PATIENT, "Vos résultats", f"Reply-To: <{SECRETARIAT}>\r\n")[0] == 250
    )
    # The reply goes to Reply-To only: the sender did not become a contact (ENS MES).
    assert send(server, PATIENT, DOCTOR, "Re: Vos résultats")[0] == 550
    assert send(server, PATIENT, SECRETARIAT, "Re: Vos résultats")[0] == 250
    assert send(server, PATIENT, OTHER, "Re: Vos résultats")[0] == 550  # never wrote
    assert send(server, DOCTOR, PATIENT, "Vos résultats, suite")[0] == 250  # no Reply-To
    assert send(server, PATIENT, DOCTOR, "Re: Vos résultats, suite")[0] == 250

    assert send(server, DOCTOR, PATIENT, "Fin du suivi", "X-MSS-MES: FIN\r\n")[0] == 250
    code, text = send(server, PATIENT, DOCTOR, "Re: Fin du suivi")
    assert code == 550 and b"ended the exchange" in text

    assert send(server, DOCTOR, PATIENT, "Nouveau rendez-vous")[0] == 250  # a new exchange
    assert send(server, PATIENT, DOCTOR, "Re: Nouveau rendez-vous")[0] == 250
    assert send(server, DOCTOR, PATIENT, "[FIN]")[0] == 250
    assert send(server, PATIENT, DOCTOR, "Re: [FIN]")[0] == 550


def test_the_rules_read_the_header_as_the_patients_mail_reader(server: ServerProcess) -> None:
    """Issue 17: the header is read once, as IMAP reads it; ``Reply-To :`` and
    ``X-MSS-MES<TAB>:`` (RFC 5322 §4.5.3 obsolete syntax) are the fields the patient sees."""
    assert send(server, LENOIR, PATIENT, "Bilan", f"Reply-To : <{ACCUEIL}>\r\n")[0] == 250
    assert send(server, PATIENT, ACCUEIL, "Re: Bilan")[0] == 250
    assert send(server, LENOIR, PATIENT, "Fin", "X-MSS-MES\t: FIN\r\n")[0] == 250
    code, text = send(server, PATIENT, LENOIR, "Re: Fin")
    assert code == 550 and b"ended the exchange" in text


def test_professionals_are_not_limited(server: ServerProcess) -> None:
    assert send(server, OTHER, DOCTOR, "Avis")[0] == 250


def test_correspondents_are_not_stored_in_clear(server: ServerProcess) -> None:
    send(server, DOCTOR, PATIENT, "Encore")
    with sqlite3.connect(server.data_dir / "hygie.db") as db:
        rows = db.execute("SELECT correspondent FROM patient_correspondents").fetchall()
    assert rows and all(DOCTOR.encode() not in bytes(r[0]) for r in rows)
    assert all(len(bytes(r[0])) == 32 for r in rows)
