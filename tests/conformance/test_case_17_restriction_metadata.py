"""MSSanté reference (b) 17, restriction metadata: "a document flagged MASQUE_PS is never sent
to a professional's mailbox; INVISIBLE_PATIENT is never sent to @patient.mssante.fr".

Against a running ``hygie serve``, with a patient whose space was opened from an invitation
(so that a notification goes to their personal e-mail on the test smarthost):

- an INVISIBLE_PATIENT document sent by SMTP is filed (the MDN says ``processed``) and the
  médecin traitant reads it over HTTPS, but the patient finds it nowhere: no folder of their
  mailbox changes (IMAP), the dossier API does not list it, its CDA and its hide switch answer
  404 as for a document that does not exist, and no notification goes out;
- a MASQUE_PS document addressed to a professional, beside the patient or ``dmp@``, over
  submission or the inbound relay, is refused at DATA and nothing is delivered to anyone;
  sent to the patient alone it is filed, the patient reads it, professionals do not, and the
  receipts (MDN, DSN) that go back to the sender carry none of it;
- an archive whose flags cannot be read reaches no professional;
- a data directory where an older version filed an INVISIBLE_PATIENT document in the
  patient's Dossier folder loses that message when ``hygie serve`` starts.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import json
import re
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from bench.harness import ServerProcess, free_ports
from dossier.cda import build_cda
from dossier.subject import mss_document_headers
from dossier.xdm import INVISIBLE_PATIENT, MASQUE_PS, OutgoingDocument, build_xdm, parse_xdm
from mailformats.mdn import parse_mdn
from server.app import open_services
from server.config import load_config
from server.delivery.message import meta_of, parse
from server.outbound.trust import render_trusted_domains
from server.workflows.dossier import DOSSIER_FOLDER, dossier_message
from storage.dossier import DossierIndex
from tests.e2e.test_dossier_filing import DOCTOR, INS, PASSWORD, PATIENT, PDF, cda, xdm_message
from tests.server.spaces_support import Inbox
from tests.support.servers import bearer_token, settle, start_server, stop_server

pytestmark = pytest.mark.timeout(600)

TRAITANT = ("dr.traitant@hygie.test", "810005555555")
COLLEAGUE = "dr.collegue@hygie.test"
AUTHOR_IDNAT = "810001234567"  # the author of the documents cda() builds
PERSONAL = "marie.dupont@example.org"
DMP = "dmp@hygie.test"
# The patient of tests.e2e.test_dossier_filing.cda(), as the directory registers them.
IDENTITY = ("--birth-name", "DUPONT", "--given", "Marie", "--birth-date", "1979-03-12",
            "--sex", "F")  # fmt: skip
INVITATION = (
    "ins,oid,birth_name,given_names,birth_date,sex,birthplace,status,email\n"
    f"{INS},1.2.250.1.213.1.4.8,DUPONT,Marie,1979-03-12,F,51215,QUAL,{PERSONAL}\n"
)


@pytest.fixture(scope="module")
def smarthost() -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_ports(1)[0])
    controller.start()
    inbox.port = controller.port  # type: ignore[attr-defined]
    yield inbox
    controller.stop()


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, smarthost: Inbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        "HYGIE_NOTIFY_HOST": "127.0.0.1", "HYGIE_NOTIFY_PORT": str(smarthost.port),  # type: ignore[attr-defined]
        "HYGIE_NOTIFY_SECURITY": "none", "HYGIE_NOTIFY_INTERVAL_SECONDS": "0",
        "HYGIE_SPACES_JOB_SECONDS": "0.2",
    }  # fmt: skip
    users = {DOCTOR: PASSWORD, TRAITANT[0]: PASSWORD, COLLEAGUE: PASSWORD}
    # Host "localhost": the CRL distribution point the relay checks resolves here.
    srv = ServerProcess(users=users, env=env, hostname="localhost")
    try:
        srv.init()
        # Another operator of the trust space, for the inbound relay's test.
        (srv.data_dir / "trust" / "liste-blanche.xml").write_bytes(
            render_trusted_domains(["hygie.test", "patient.hygie.test", "autre.test"])
        )
        srv.start()
    except BaseException:
        srv.close()
        raise
    invitation = tmp_path_factory.mktemp("case17") / "invitation.csv"
    invitation.write_text(INVITATION, "utf-8")
    srv.hygie_batch(  # the patient's identity, their médecin traitant, then their space
        (("patient", "add", INS, *IDENTITY, "--medecin-traitant", TRAITANT[1],
          "--no-mailbox"), None),
        *((("user", "bind", address, "--idnat", idnat), None)
          for address, idnat in (TRAITANT, (DOCTOR, AUTHOR_IDNAT))),
        (("patient", "invite", str(invitation), "--period-days", "0"), None),
    )  # fmt: skip
    wait_for(lambda: smarthost.to(PERSONAL))  # the invitation: the space is open
    yield srv
    stop_server(srv)


# -- helpers ------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def submit(
    server: ServerProcess, recipients: list[str], raw: bytes, *, dsn: bool = False
) -> tuple[int, str]:
    """The doctor submits ``raw`` (with ``dsn``: ``RET=FULL``, ``NOTIFY=SUCCESS``): (code,
    text) of the DATA reply."""
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as smtp:
        smtp.starttls(context=server.ssl_context())
        smtp.login(DOCTOR, PASSWORD)
        smtp.ehlo()
        smtp.mail(DOCTOR, ["RET=FULL"] if dsn else [])
        for rcpt in recipients:
            assert smtp.rcpt(rcpt, ["NOTIFY=SUCCESS"] if dsn else [])[0] == 250
        code, text = smtp.data(raw)
    return code, text.decode()


def imap(server: ServerProcess, who: str) -> imaplib.IMAP4_SSL:
    """A session as ``who``: the patient signs in with a token (their space has no password
    yet), the professionals with theirs."""
    client = imaplib.IMAP4_SSL("localhost", server.imap_tls_port, ssl_context=server.ssl_context())
    if who == PATIENT:
        sasl = f"user={who}\x01auth=Bearer {bearer_token(server, who)}\x01\x01".encode()
        client.authenticate("XOAUTH2", lambda _: sasl)
    else:
        client.login(who, PASSWORD)
    return client


def census(server: ServerProcess, who: str) -> dict[str, int]:
    """Every folder of ``who``'s mailbox and how many messages it holds (LIST, STATUS)."""
    client = imap(server, who)
    _, listed = client.list()
    found = {}
    for line in listed:
        assert isinstance(line, bytes)
        name = line.rsplit(b" ", 1)[1].strip(b'"').decode()
        _, status = client.status(name, "(MESSAGES)")
        found[name] = int(re.search(rb"MESSAGES (\d+)", status[0]).group(1))  # type: ignore[union-attr]
    client.logout()
    return found


def newest_receipt(server: ServerProcess, after: int) -> bytes:
    """The doctor's message number ``after + 1`` (the MDN), once it is there."""

    def fetch() -> bytes | None:
        client = imap(server, DOCTOR)
        _, data = client.select("INBOX", readonly=True)
        raw = None
        if int(data[0] or 0) > after:
            _, fetched = client.fetch(str(after + 1), "(BODY.PEEK[])")
            raw = next(i[1] for i in fetched if isinstance(i, tuple))
        client.logout()
        return raw

    found = wait_for(fetch)
    assert isinstance(found, bytes)
    return found


def call(server: ServerProcess, path: str, who: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(f"https://localhost:{server.https_port}{path}", method=method)
    request.add_header("Authorization", f"Bearer {bearer_token(server, who)}")
    if path.startswith(PROFESSIONAL):
        request.add_header("Patient-INS", INS)  # never in the URL (MSSanté test case 19)
    try:
        with urllib.request.urlopen(  # noqa: S310 (https, our own server)
            request, context=server.ssl_context(), timeout=30
        ) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def titles(server: ServerProcess, path: str, who: str) -> dict[str, int]:
    """The dossier as ``who`` lists it over HTTPS: title → document id."""
    status, body = call(server, path, who)
    assert status == 200, body
    return {d["title"]: d["id"] for d in json.loads(body)["documents"]}


def notifications(smarthost: Inbox) -> int:
    return sum(1 for m in smarthost.to(PERSONAL) if b"Something new" in m)


def document(title: str, restriction: str | None, to: str, subject: str) -> bytes:
    flags = frozenset({restriction}) if restriction else frozenset()
    return xdm_message(replace(cda(), title=title), to, subject, restrictions=flags)


OWN = "/dossier/documents"
PROFESSIONAL = "/dossier/patient/documents"  # the patient in the Patient-INS header


# -- INVISIBLE_PATIENT --------------------------------------------------------------------------


def test_invisible_document_reaches_no_patient_view(
    server: ServerProcess, smarthost: Inbox
) -> None:
    title = "Annonce diagnostique"
    mailbox = census(server, PATIENT)
    notified = notifications(smarthost)
    receipts = census(server, DOCTOR)["INBOX"]

    # C: the doctor submits the archive to the patient; S: 250, then an MDN "processed".
    code, _ = submit(server, [PATIENT], document(title, INVISIBLE_PATIENT, PATIENT, title))
    assert code == 250
    assert parse_mdn(newest_receipt(server, receipts)).error_code is None

    # The médecin traitant reads it.
    filed = titles(server, PROFESSIONAL, TRAITANT[0])
    assert title in filed
    status, body = call(server, f"{PROFESSIONAL}/{filed[title]}/cda", TRAITANT[0])
    assert status == 200 and title.encode() in body

    # The patient: not a message more in any folder, nothing in the dossier API, and the
    # document's own URLs answer as for one that does not exist.
    assert census(server, PATIENT) == mailbox
    assert title not in titles(server, OWN, PATIENT)
    assert call(server, f"{OWN}/{filed[title]}/cda", PATIENT) == (
        404, b'{"error": "no such document"}')  # fmt: skip
    assert call(server, f"{OWN}/{filed[title]}/hide", PATIENT, "POST") == (
        404, b'{"error": "no such document"}')  # fmt: skip

    # No notification to the personal e-mail: a later visible document proves the channel.
    time.sleep(2)  # ten rounds of the spaces' jobs
    assert notifications(smarthost) == notified
    code, _ = submit(server, [PATIENT], document("Ordonnance", None, PATIENT, "Ordonnance"))
    assert code == 250
    settle(server)
    wait_for(lambda: notifications(smarthost) > notified)
    assert "Ordonnance" in titles(server, OWN, PATIENT)
    assert census(server, PATIENT)[DOSSIER_FOLDER] == mailbox.get(DOSSIER_FOLDER, 0) + 1


def test_invisible_document_beside_visible_ones(server: ServerProcess) -> None:
    """One archive, two documents, one INVISIBLE_PATIENT: the visible one is filed in the
    Dossier folder, the archive itself stays out of the INBOX (it holds both)."""
    mailbox = census(server, PATIENT)
    archive = build_xdm(
        [OutgoingDocument(build_cda(replace(cda(), title="Compte rendu opératoire"), pdf=PDF),
                          pdf=PDF),
         OutgoingDocument(build_cda(replace(cda(), title="Pronostic"), pdf=PDF), pdf=PDF,
                          restrictions=frozenset({INVISIBLE_PATIENT}))],
        source_id="1.2.250.1.999.1",
    )  # fmt: skip
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = DOCTOR, PATIENT, "Deux documents"
    message["X-MSS-NIL"] = "HYGIE-TEST"
    for name, value in mss_document_headers(parse_xdm(archive), ins_qualified=True).items():
        message[name] = value
    message.set_content("Ci-joint.")
    message.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.zip")
    assert submit(server, [PATIENT], message.as_bytes(policy=email.policy.SMTP))[0] == 250
    settle(server)
    assert "Pronostic" in titles(server, PROFESSIONAL, TRAITANT[0])
    seen = titles(server, OWN, PATIENT)
    assert "Compte rendu opératoire" in seen and "Pronostic" not in seen
    after = census(server, PATIENT)
    assert after["INBOX"] == mailbox["INBOX"]
    assert after[DOSSIER_FOLDER] == mailbox.get(DOSSIER_FOLDER, 0) + 1


# -- MASQUE_PS ----------------------------------------------------------------------------------


def test_masked_document_never_reaches_a_professional(server: ServerProcess) -> None:
    title = "Consultation de sexologie"
    before = {who: census(server, who) for who in (PATIENT, COLLEAGUE)}

    # C: DATA with a professional among the recipients; S: 550 5.7.1, for the whole message.
    for recipients in ([PATIENT, COLLEAGUE], [DMP, COLLEAGUE], [COLLEAGUE]):
        code, text = submit(server, recipients, document(title, MASQUE_PS, recipients[0], title))
        assert (code, text.split(" ", 1)[0]) == (550, "5.7.1"), (recipients, code, text)
        assert "MASQUE_PS" in text
    assert {who: census(server, who) for who in (PATIENT, COLLEAGUE)} == before
    assert title not in titles(server, OWN, PATIENT)

    # Sent to the patient alone it is filed: the patient reads it, no professional does.
    receipts = census(server, DOCTOR)["INBOX"]
    masked = document(title, MASQUE_PS, PATIENT, "Compte rendu")
    code, _ = submit(server, [PATIENT], masked, dsn=True)
    assert code == 250
    settle(server)
    assert title in titles(server, OWN, PATIENT)
    assert census(server, PATIENT)[DOSSIER_FOLDER] == before[PATIENT].get(DOSSIER_FOLDER, 0) + 1
    assert title not in titles(server, PROFESSIONAL, TRAITANT[0])
    assert title not in titles(server, PROFESSIONAL, DOCTOR)  # its author neither
    assert census(server, COLLEAGUE) == before[COLLEAGUE]

    # Nor does a receipt bring it back to the sender's mailbox: the MDN and the DSN (though
    # RET=FULL asked for the whole message) return the original's header section only.
    wait_for(lambda: census(server, DOCTOR)["INBOX"] >= receipts + 2)
    for number in (receipts + 1, receipts + 2):
        raw = newest_receipt(server, number - 1)
        report = email.message_from_bytes(raw, policy=email.policy.default)
        assert report.get_content_type() == "multipart/report"
        returned = list(report.iter_parts())[2]
        assert returned.get_content_type() == "text/rfc822-headers", returned
        assert b"IHE_XDM" not in raw and title.encode() not in raw


def test_masked_document_is_refused_by_the_inbound_relay(server: ServerProcess) -> None:
    """Another operator of the trust space relays it to a professional here (port 25 role,
    mutual TLS): refused at DATA the same way."""
    before = census(server, COLLEAGUE)
    smtp = smtplib.SMTP("127.0.0.1", server.relay_port, timeout=30)
    context = server.ssl_context()
    tls = server.data_dir / "tls"
    context.load_cert_chain(tls / "server.crt", tls / "server.key")
    smtp.starttls(context=context)
    smtp.ehlo("localhost")
    assert smtp.mail("dr.distant@autre.test")[0] == 250
    assert smtp.rcpt(COLLEAGUE)[0] == 250
    code, text = smtp.data(document("Relayé", MASQUE_PS, COLLEAGUE, "Relayé"))
    smtp.quit()
    assert code == 550 and b"MASQUE_PS" in text
    assert census(server, COLLEAGUE) == before


def test_unreadable_archive_reaches_no_professional(server: ServerProcess) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = DOCTOR, COLLEAGUE, "Archive abîmée"
    message.set_content("Ci-joint.")
    message.add_attachment(b"PK\x03\x04 not a zip", maintype="application", subtype="zip",
                           filename="IHE_XDM.zip")  # fmt: skip
    code, text = submit(server, [COLLEAGUE], message.as_bytes(policy=email.policy.SMTP))
    assert code == 554 and text.startswith("5.6.0") and "restriction flags" in text


# -- data filed by an older version -------------------------------------------------------------


@pytest.fixture
def upgraded(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, "sqlite", {DOCTOR: PASSWORD})
    srv.hygie("patient", "add", INS, *IDENTITY)  # opens the patient's mailbox
    yield srv
    stop_server(srv)


async def file_as_before(data_dir: Path, env: dict[str, str]) -> None:
    """What versions before this rule did with an INVISIBLE_PATIENT document: a message in
    the patient's Dossier folder, indexed."""
    config = load_config(data_dir, env)
    services = await open_services(config)
    try:
        store, index = services.store, DossierIndex(services.db, services.master)
        patient = await store.resolve(PATIENT)
        assert patient is not None
        invisible = frozenset({INVISIBLE_PATIENT})
        archive = parse_xdm(build_xdm(
            [OutgoingDocument(build_cda(cda(), pdf=PDF), restrictions=invisible)],
            source_id="1.2.250.1.999.1",
        ))  # fmt: skip
        (document_,) = archive.cda_documents
        assert document_.cda is not None
        folder = await store.folder(patient.account_id, DOSSIER_FOLDER)
        if folder is None:
            folder = await store.create_folder(patient.account_id, DOSSIER_FOLDER)
        raw = dossier_message(document_.cda, document_, PATIENT, None, 1)
        stored = await store.append(folder, patient.public_key, raw, meta_of(parse(raw)))
        await index.add(account_id=patient.account_id, unique_id=document_.cda.unique_id,
                        set_id=None, version=1, restrictions=document_.restrictions,
                        folder_id=folder.id, uid=stored.uid, cda=document_.content)  # fmt: skip
    finally:
        await services.db.close()


def test_start_withdraws_what_older_versions_filed(upgraded: ServerProcess) -> None:
    assert upgraded.stop() == 0
    asyncio.run(file_as_before(upgraded.data_dir, upgraded.env()))
    upgraded.start()
    assert census(upgraded, PATIENT).get(DOSSIER_FOLDER, 0) == 0
    assert "dossier_invisible_withdrawn" in upgraded.log_bytes().decode(errors="replace")
