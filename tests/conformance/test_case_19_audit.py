"""MSSanté reference (b) 19, audit: "every login, send, fetch, delete and MDN is traced; no
token or INS appears in URLs or logs".

Against a running ``hygie serve``: a professional submits a document to a patient (audit
``mail.send``, in the message's commit), the filing answers with an MDN (``mdn.sent``), the
patient reads the document in the ``Dossier`` folder over IMAP (``dossier.open``, then
``dossier.fetch`` for the body, not for flags alone) and deletes a message (``mail.expunge``).
Logins are in the server log (``auth_ok``, account id and peer). Neither ``hygie audit`` nor the
server log holds the INS or the token.
"""

from __future__ import annotations

import imaplib
import json
import smtplib
from collections.abc import Iterator

import pytest

from bench.harness import ServerProcess
from tests.e2e.test_dossier_filing import cda, receipts, xdm_message
from tests.support.servers import bearer_token, settle, start_server, stop_server

pytestmark = pytest.mark.timeout(600)

INS = "279035121518989"
PATIENT = f"{INS}@patient.hygie.test"
DOCTOR = "paul.martin@hygie.test"
PASSWORD = "dossier-test-password-1"


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, "sqlite", {DOCTOR: PASSWORD, PATIENT: PASSWORD})
    yield srv
    stop_server(srv)


def audit(server: ServerProcess, action: str) -> list[tuple[str, str, dict[str, object]]]:
    """(actor, target, detail) of the entries whose action is ``action``, newest first."""
    out = server.hygie("audit", "--action", action, "--limit", "1000").stdout.decode()
    found = []
    for line in out.splitlines():
        _, actor, name, rest = line.split("  ", 3)
        if name == action:
            target, _, detail = rest.rpartition("  ")
            found.append((actor, target.split(" from ")[0], json.loads(detail)))
    return found


def imap(server: ServerProcess, user: str) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context())
    client.login(user, PASSWORD)
    return client


def test_send_mdn_fetch_and_delete_are_audited(server: ServerProcess) -> None:
    sends = len(audit(server, "mail.send"))
    token = bearer_token(server, DOCTOR)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(DOCTOR, PASSWORD)
        smtp.sendmail(DOCTOR, [PATIENT], xdm_message(cda(), PATIENT, "Compte rendu"))
    receipts(server, 0)  # the MDN came back
    settle(server)
    [send, *_] = audit(server, "mail.send")
    assert len(audit(server, "mail.send")) == sends + 1
    assert send[0].startswith("account:") and send[2] == {"recipients": 1}
    [mdn_entry] = audit(server, "mdn.sent")
    assert mdn_entry[1] == f"mailbox:{DOCTOR}" and mdn_entry[2] == {"code": 0}

    client = imap(server, PATIENT)
    client.select("Dossier", readonly=True)
    assert audit(server, "dossier.open")
    client.fetch("1", "(FLAGS)")
    assert audit(server, "dossier.fetch") == []  # flags are no document
    typ, _ = client.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK"
    [fetched] = audit(server, "dossier.fetch")
    assert fetched[2]["count"] == 1
    client.select("INBOX")
    client.store("1", "+FLAGS", "\\Deleted")
    client.expunge()
    client.logout()
    [expunged] = audit(server, "mail.expunge")
    assert expunged[2]["count"] == 1

    doctor = imaplib.IMAP4_SSL("127.0.0.1", server.imap_tls_port, ssl_context=server.ssl_context())
    sasl = f"user={DOCTOR}\x01auth=Bearer {token}\x01\x01"
    assert doctor.authenticate("XOAUTH2", lambda _: sasl.encode())[0] == "OK"
    doctor.logout()

    # Neither the audit log nor the server's own log holds the INS or a token.
    everything = server.hygie("audit", "--limit", "1000").stdout.decode()
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert "auth_ok" in log
    for text in (everything, log):
        assert INS not in text and token not in text and PASSWORD not in text
