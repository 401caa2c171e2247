"""MSSanté reference (b) 13, Mon espace santé reply rules: "a patient cannot start a thread; a
patient reply after FIN or [FIN] is refused; a reply goes to Reply-To; a minor's documents go
to the minor's own INS address".

Against a running ``hygie serve``, over submission with STARTTLS:

- a patient writing first to a professional is refused at ``RCPT`` (``550 5.7.1``);
- after a professional's message with ``X-MSS-MES: FIN``, or with the subject ``[FIN]``, the
  patient's reply to that professional is refused; a new message from the professional opens
  a new exchange;
- when the professional's message carries an MSSanté ``Reply-To``, the patient may answer that
  address and not the sender's (ENS MES: the sender is not added to the patient's contacts);
  a ``Reply-To`` outside the trust space opens nothing;
- a document about a minor, sent to a parent's (legal representative's) INS address, is
  refused at DATA and reaches no one; sent to the minor's own address it is filed in the
  minor's dossier, and the MDN says ``processed``.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from dataclasses import replace
from datetime import date

import pytest

from bench.harness import ServerProcess
from dossier.cda import PatientIdentity
from dossier.ins import NIR_OID, Ins
from mailformats.mdn import parse_mdn
from tests.e2e.test_dossier_filing import cda, inbox_count, receipts, subjects, xdm_message
from tests.support.servers import settle, start_server, stop_server

pytestmark = pytest.mark.timeout(600)

DOCTOR = "paul.martin@hygie.test"  # the sender of tests.e2e.test_dossier_filing's messages
SECRETARIAT = "secretariat.cardio@hygie.test"
OTHER = "dr.autre@hygie.test"
PASSWORD = "dossier-test-password-1"
PARENT_INS = "279035121518989"  # Marie DUPONT, born in March 1979
PARENT = f"{PARENT_INS}@patient.hygie.test"


def keyed(first13: str) -> str:
    return f"{first13}{97 - int(first13) % 97:02d}"


CHILD_INS = keyed("2150375123456")  # a girl born in March 2015
CHILD = f"{CHILD_INS}@patient.hygie.test"
CHILD_IDENTITY = ("--birth-name", "DUPONT", "--given", "Léa", "--birth-date", "2015-03-12",
                  "--sex", "F")  # fmt: skip


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    users = dict.fromkeys([DOCTOR, SECRETARIAT, OTHER, PARENT], PASSWORD)
    srv = start_server(request, "sqlite", users)
    srv.add_user(CHILD, PASSWORD, CHILD_IDENTITY)
    yield srv
    stop_server(srv)


def send(server: ServerProcess, sender: str, to: str, subject: str, extra: str = "") -> int:
    """``sender`` writes to ``to``: the RCPT reply code (250: the message was sent)."""
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(sender, PASSWORD)
        smtp.mail(sender)
        code, text = smtp.rcpt(to)
        if code == 250:
            smtp.data(f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n{extra}\r\nx\r\n"
                      .encode())  # fmt: skip
        else:
            assert text.startswith(b"5.7.1 "), text
        return code


def test_a_patient_cannot_start_a_thread(server: ServerProcess) -> None:
    assert send(server, PARENT, OTHER, "Question") == 550


@pytest.mark.parametrize(("how", "subject", "extra"), [
    ("X-MSS-MES", "Fin du suivi", "X-MSS-MES: FIN\r\n"), ("[FIN]", "[FIN]", ""),
])  # fmt: skip
def test_a_reply_after_fin_is_refused(server: ServerProcess, how: str, subject: str,
                                      extra: str) -> None:  # fmt: skip
    assert send(server, OTHER, PARENT, "Vos résultats") == 250
    assert send(server, PARENT, OTHER, "Re: Vos résultats") == 250
    assert send(server, OTHER, PARENT, subject, extra) == 250
    assert send(server, PARENT, OTHER, f"Re: {subject}") == 550, how
    assert send(server, OTHER, PARENT, "Nouveau rendez-vous") == 250  # a new exchange
    assert send(server, PARENT, OTHER, "Re: Nouveau rendez-vous") == 250


def test_a_reply_goes_to_reply_to_only(server: ServerProcess) -> None:
    assert send(server, DOCTOR, PARENT, "Bilan", f"Reply-To: <{SECRETARIAT}>\r\n") == 250
    assert send(server, PARENT, SECRETARIAT, "Re: Bilan") == 250
    assert send(server, PARENT, DOCTOR, "Re: Bilan") == 550  # not added to the contacts
    # A Reply-To outside the MSSanté trust space opens no channel to the outside world.
    assert send(server, DOCTOR, PARENT, "Bilan 2", "Reply-To: <x@example.org>\r\n") == 250
    assert send(server, PARENT, DOCTOR, "Re: Bilan 2") == 250  # the sender, as without one


def child_document() -> bytes:
    child = PatientIdentity(Ins(CHILD_INS, NIR_OID), "DUPONT", ("Léa",), date(2015, 3, 12), "F")
    return xdm_message(replace(cda(CHILD_INS), patient=child), CHILD, "Compte rendu de Léa")


def test_a_minors_documents_go_to_the_minors_own_address(server: ServerProcess) -> None:
    before = inbox_count(server, PARENT)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(DOCTOR, PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as caught:
            smtp.sendmail(DOCTOR, [PARENT], child_document())
    assert caught.value.smtp_code == 550
    assert b"own address (a minor's too)" in caught.value.smtp_error
    settle(server)
    assert inbox_count(server, PARENT) == before
    assert subjects(server, PARENT, "Dossier") == []

    sent = inbox_count(server, DOCTOR)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(DOCTOR, PASSWORD)
        smtp.sendmail(DOCTOR, [CHILD], child_document())
    report = parse_mdn(receipts(server, sent)[-1])
    assert report.error_code is None and report.disposition_type == "processed"
    assert subjects(server, CHILD, "INBOX") == ["Compte rendu de Léa"]
    assert subjects(server, CHILD, "Dossier") != []
