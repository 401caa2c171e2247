"""MSSanté reference (b) 11, sizes: "oversize mail gets 552, plus the 25 MB rule for the
patient domain".

Against a running ``hygie serve`` whose general limit (8 MiB in the tests) is larger than its
patient limit (1 MB here, 25 MB by default: Mon espace santé's): a message over the general
limit is refused at ``MAIL FROM`` (its SIZE) with ``552``; a message under it but over the
patient limit reaches a professional, and is refused at DATA with ``552 5.3.4`` as soon as a
patient is among its recipients (To, Cc or Bcc), and reaches no one.

The DSNs on delivery and failure, and their readable text, are case 11's other half:
tests/e2e/test_submission.py and tests/server/test_dsn.py (docs/conformance.md).
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from bench.harness import ServerProcess
from tests.support.mail import find_by_subject, inbox_messages
from tests.support.servers import MAX_MESSAGE_SIZE, settle, start_server, stop_server

pytestmark = pytest.mark.timeout(600)

DOCTOR = "paul.martin@hygie.test"
COLLEAGUE = "claire.martin@hygie.test"
PATIENT = "279035121518989@patient.hygie.test"
PASSWORD = "case-11-password-1"
PATIENT_LIMIT = 1_000_000


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    env = {"HYGIE_SMTP_PATIENT_MAX_MESSAGE_SIZE": str(PATIENT_LIMIT)}
    srv = start_server(request, "sqlite", dict.fromkeys([DOCTOR, COLLEAGUE, PATIENT], PASSWORD),
                       env)  # fmt: skip
    yield srv
    stop_server(srv)


def message(subject: str, size: int) -> bytes:
    head = f"From: <{DOCTOR}>\r\nTo: <{COLLEAGUE}>\r\nSubject: {subject}\r\n\r\n".encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * (size // len(line) + 1)


def submit(server: ServerProcess, recipients: list[str], raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=120) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(DOCTOR, PASSWORD)
        smtp.sendmail(DOCTOR, recipients, raw)


def test_over_the_general_limit_is_552(server: ServerProcess) -> None:
    with pytest.raises(smtplib.SMTPSenderRefused) as caught:
        submit(server, [COLLEAGUE], message("Trop gros", MAX_MESSAGE_SIZE + 1))
    assert caught.value.smtp_code == 552


def test_over_the_patient_limit_reaches_no_patient(server: ServerProcess) -> None:
    big = message("Imagerie", PATIENT_LIMIT + 1)
    submit(server, [COLLEAGUE], big)  # under the general limit: a professional gets it
    settle(server)
    assert len(find_by_subject(inbox_messages(server, COLLEAGUE, PASSWORD), "Imagerie")) == 1
    for recipients in ([PATIENT], [COLLEAGUE, PATIENT]):
        with pytest.raises(smtplib.SMTPDataError) as caught:
            submit(server, recipients, big.replace(b"Imagerie", b"Imagerie patient"))
        assert caught.value.smtp_code == 552
        assert b"5.3.4" in caught.value.smtp_error and b"patient" in caught.value.smtp_error
    settle(server)
    assert find_by_subject(inbox_messages(server, PATIENT, PASSWORD), "Imagerie patient") == []
    assert find_by_subject(inbox_messages(server, COLLEAGUE, PASSWORD), "Imagerie patient") == []
    # Under the patient limit, the patient gets it.
    submit(server, [PATIENT], message("Petit", PATIENT_LIMIT // 2))
    settle(server)
    assert len(find_by_subject(inbox_messages(server, PATIENT, PASSWORD), "Petit")) == 1
