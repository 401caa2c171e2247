"""The pipeline end to end (design.md §2, issue 18), against a real ``hygie serve``:

- ``kill -9`` right after the ``250`` of messages that have after-commit work (dossier filing
  and its MDN): after a restart each document is filed once and each MDN sent once;
- a 20 MiB message is parsed once on its way in (``hygie_message_parses_total``).
"""

from __future__ import annotations

import email
import email.policy
import re
import smtplib
import time
import urllib.request
from collections.abc import Iterator

import pytest

from bench.harness import ServerProcess
from tests.e2e.test_dossier_filing import (
    DOCTOR,
    PASSWORD,
    PATIENT,
    cda,
    imap,
    inbox_count,
    subjects,
    xdm_message,
)
from tests.support.servers import settle, start_server, stop_server

MESSAGES = 6
BIG = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    env = {"HYGIE_SERVER_JOB_LEASE_SECONDS": "2", "HYGIE_SMTP_MAX_MESSAGE_SIZE": str(2 * BIG)}
    srv = start_server(request, "sqlite", {DOCTOR: PASSWORD, PATIENT: PASSWORD}, env)
    yield srv
    stop_server(srv)


def mdn_subjects(server: ServerProcess) -> list[str]:
    client = imap(server, DOCTOR)
    client.select("INBOX", readonly=True)
    _, found = client.search(None, 'HEADER Content-Type "disposition-notification"')
    client.logout()
    return found[0].split() if found and found[0] else []


def test_kill_after_the_250_files_each_document_once(server: ServerProcess) -> None:
    """The after-commit work of acknowledged messages survives a power cut of the process,
    and is not done twice (the outbox's leases and recorded effects)."""
    patient_inbox = inbox_count(server, PATIENT)
    filed = len(subjects(server, PATIENT, "Dossier"))
    receipts = len(mdn_subjects(server))
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(DOCTOR, PASSWORD)
        for n in range(MESSAGES):
            smtp.sendmail(DOCTOR, [PATIENT], xdm_message(cda(), PATIENT, f"Coupure {n}"))
        server.kill()  # right after the last 250: some filings done, some not, one midway
    server.restart()
    settle(server, timeout=60)
    assert inbox_count(server, PATIENT) == patient_inbox + MESSAGES
    assert len(subjects(server, PATIENT, "Dossier")) == filed + MESSAGES
    deadline = time.monotonic() + 30
    while len(mdn_subjects(server)) < receipts + MESSAGES and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(mdn_subjects(server)) == receipts + MESSAGES


def scrape(server: ServerProcess, token: str) -> float:
    request = urllib.request.Request(
        f"https://localhost:{server.https_port}/metrics",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, context=server.ssl_context(), timeout=30) as reply:  # noqa: S310
        text = reply.read().decode()
    found = re.search(r"^hygie_message_parses_total (\S+)$", text, re.M)
    assert found is not None, text[:2000]
    return float(found.group(1))


def test_a_20_mib_message_is_parsed_once(server: ServerProcess) -> None:
    token = server.hygie("report", "metrics-token").stdout.decode().splitlines()[0].strip()
    settle(server)
    before = scrape(server, token)
    message = email.message.EmailMessage()
    message["From"], message["To"], message["Subject"] = DOCTOR, DOCTOR, "Imagerie"
    message.set_content("Les images en pièce jointe.")
    payload = bytes(range(256)) * (BIG // 256)
    message.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename="images.bin")  # fmt: skip
    raw = message.as_bytes(policy=email.policy.SMTP)
    assert len(raw) > BIG
    count = inbox_count(server, DOCTOR)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=120) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(DOCTOR, PASSWORD)
        smtp.sendmail(DOCTOR, [DOCTOR], raw)
    assert scrape(server, token) - before == 1
    client = imap(server, DOCTOR)
    client.select("INBOX", readonly=True)
    _, data = client.fetch(str(count + 1), "(BODY.PEEK[2])")
    client.logout()
    body = next(i[1] for i in data if isinstance(i, tuple))
    assert (
        email.message_from_bytes(b"Content-Transfer-Encoding: base64\r\n\r\n" + body).get_payload(
            decode=True
        )
        == payload
    )
