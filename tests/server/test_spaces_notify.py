"""Invitations and notifications to patients' personal e-mail (issue 11 item 2) through a real
SMTP smarthost (aiosmtpd on loopback, STARTTLS with its own certificate, AUTH PLAIN with the
password from ``[notify] password_file``): what leaves carries no health information, at most
one notification goes out per interval whatever arrives, and a smarthost that is down neither
blocks nor loses the MSSanté delivery, only delays the notice."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.harness import free_ports
from server.config import Config
from server.delivery.pipeline import Envelope, Origin, Pipeline
from server.delivery.trace import Trace
from server.espace.notify import Smarthost
from server.espace.spaces import PatientNotices, SpaceJobs, invite
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, migrate
from storage.mailstore import MailStore, Recipient
from storage.spaces import SpaceStore
from tests.server.spaces_support import Clock, config, ins, invitation_code, invite_csv

T0 = dt.datetime(2026, 5, 4, 8, 0, tzinfo=dt.UTC)
SMTP_USER, SMTP_PASSWORD = "hygie-relay", "relay-secret-9f2"
TRACE = Trace("mta.hygie.test", "127.0.0.1", "ESMTPSA", "TLSv1.3", "mail.hygie.test")
# What a message to a patient says that must never reach their personal mailbox.
HEALTH = ("Gregory", "House", "gregory.house", "Tumeur maligne", "11502-2", "CR-MARKER-77ad",
          "MARTIN", "Marie")  # fmt: skip


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


class Relay:
    """The smarthost: records what it accepts."""

    def __init__(self) -> None:
        self.mails: list[Received] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 queued"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                   auth_data: Any) -> AuthResult:  # fmt: skip
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        SMTP_USER.encode(), SMTP_PASSWORD.encode())  # fmt: skip
    return AuthResult(success=ok, handled=False)  # False: aiosmtpd sends the 535 itself


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = directory / "relay.crt", directory / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_file, key_file


class Smarthosts:
    def __init__(self, directory: Path) -> None:
        self.cert, key = _self_signed(directory)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(self.cert, key)
        self.port = free_ports(1)[0]
        self.relay = Relay()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(
            self.relay, hostname="127.0.0.1", port=self.port, server_hostname="localhost",
            tls_context=self.context, require_starttls=True, auth_require_tls=True,
            authenticator=_authenticator,
        )  # fmt: skip
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture()
def smarthost(tmp_path: Path) -> Iterator[Smarthosts]:
    hosts = Smarthosts(tmp_path)
    hosts.start()
    yield hosts
    hosts.stop()


@pytest.fixture()
async def operator(
    tmp_path: Path, smarthost: Smarthosts
) -> AsyncIterator[tuple[Config, Database, SpaceStore, MailStore]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hygie.db'}"
    await migrate(url)
    (tmp_path / "relay.pw").write_text(SMTP_PASSWORD + "\n")
    cfg = config(tmp_path, smarthost_port=smarthost.port)
    cfg = replace(cfg, notify=replace(
        cfg.notify, host="localhost", security="starttls", username=SMTP_USER,
        password_file="relay.pw", ca_file=str(smarthost.cert)))  # fmt: skip
    db = Database(url, open_blob_store("file", tmp_path / "blobs"))
    await db.start()
    try:
        yield cfg, db, SpaceStore(db, MasterKey.create(tmp_path / "master.key")), MailStore(db)
    finally:
        await db.close()


def _text(raw: bytes) -> str:
    msg = message_from_bytes(raw, policy=policy.default)
    body = msg.get_body(("plain",))
    assert body is not None
    return f"{msg['Subject']}\n{body.get_content()}"


def _no_health_information(raw: bytes) -> None:
    text = _text(raw)
    for leak in (*HEALTH, ins(1), ins(2), ins(1)[:13]):
        assert leak.lower() not in raw.decode("ascii", "replace").lower(), leak
        assert leak.lower() not in text.lower(), leak


async def test_invitation_and_notifications_carry_no_health_information(
    operator: tuple[Config, Database, SpaceStore, MailStore], smarthost: Smarthosts,
) -> None:
    cfg, db, spaces, store = operator
    clock = Clock(T0)
    jobs = SpaceJobs(cfg, spaces, Smarthost(cfg), clock)
    pipeline = Pipeline(cfg, db, MasterKey.load(cfg.path("master.key")), store)
    pipeline.steps = [PatientNotices(jobs)]

    async def deliver(raw: bytes, patient: Recipient) -> int:
        """Through the pipeline, as a relayed message: the copies made."""
        envelope = Envelope(Origin.RELAY, "gregory.house@hygie.test", (patient,), trace=TRACE)
        outcome = await pipeline.accept(raw, envelope)
        await pipeline.drain(5)  # its in-process steps (the notice's note)
        return len(outcome.delivered)

    await invite(spaces, cfg, invite_csv(range(1, 2)), clock(), period_days=0)
    await invite(spaces, cfg, invite_csv(range(2, 3)), clock())

    report = await jobs.run_once()  # both invited; patient 1's space opens at once
    assert (report.opened, report.sent) == (1, 2)
    (invitation,) = [m for m in smarthost.relay.mails if m.rcpt_tos == ["patient2@example.org"]]
    assert invitation.mail_from == "ne-pas-repondre@hygie.test"
    assert invitation.rcpt_tos == ["patient2@example.org"]
    text = _text(invitation.content)
    assert "https://espace.hygie.test/espace/refus" in text and "42" not in text.split("\n")[0]
    assert invitation_code(invitation.content) in text
    assert "15 juin 2026" in text  # the opening date, six weeks on
    _no_health_information(invitation.content)
    assert await spaces.by_ins(ins(2)) is not None
    rows = await db.raw_rows("SELECT invite_code FROM patient_spaces WHERE ins = ?", ins(2))
    assert rows == [(None,)]  # the code in clear is gone once sent

    patient = await store.resolve(f"{ins(1)}@patient.hygie.test")
    assert patient is not None
    raw = (b"From: Dr Gregory House <gregory.house@hygie.test>\r\n"
           b"To: " + patient.address.encode() + b"\r\n"
           b"Subject: Tumeur maligne - compte rendu\r\nX-MSS-CODECDA: 11502-2\r\n\r\n"
           b"CR-MARKER-77ad\r\n")  # fmt: skip
    await deliver(raw, patient)
    await jobs.drain()
    clock.advance(minutes=1)
    assert (await jobs.run_once()).sent == 1
    notice = smarthost.relay.mails[-1]
    assert notice.rcpt_tos == ["patient1@example.org"]
    assert "nouvel élément" in _text(notice.content)
    _no_health_information(notice.content)

    # Two more arrivals (one a dossier filing) within the hour: one notice, after the hour.
    await deliver(raw, patient)
    jobs.filed(patient.account_id)
    await jobs.drain()
    clock.advance(minutes=10)
    assert (await jobs.run_once()).sent == 0
    clock.advance(minutes=51)
    assert (await jobs.run_once()).sent == 1
    assert (await jobs.run_once()).sent == 0
    assert len(smarthost.relay.mails) == 4

    # The smarthost goes down: the MSSanté delivery is unaffected; the notice waits, retried.
    smarthost.stop()
    assert await deliver(raw, patient) == 1
    await jobs.drain()
    clock.advance(hours=2)
    assert (await jobs.run_once()).failed == 1
    smarthost.start()
    clock.advance(seconds=30)
    assert (await jobs.run_once()).sent == 0  # not before the retry time
    clock.advance(seconds=31)
    assert (await jobs.run_once()).sent == 1
    assert len(smarthost.relay.mails) == 5
    _no_health_information(smarthost.relay.mails[-1].content)
    inbox = await db.raw_rows(
        "SELECT COUNT(*) FROM messages m JOIN folders f ON f.id = m.folder_id "
        "WHERE f.account_id = ? AND f.name = 'INBOX'", patient.account_id)  # fmt: skip
    assert inbox == [(3,)]


async def test_wrong_smarthost_password_is_a_retried_failure(
    operator: tuple[Config, Database, SpaceStore, MailStore], smarthost: Smarthosts,
    tmp_path: Path,
) -> None:  # fmt: skip
    cfg, _, spaces, _ = operator
    (tmp_path / "relay.pw").write_text("wrong\n")
    clock = Clock(T0)
    jobs = SpaceJobs(cfg, spaces, Smarthost(cfg), clock)
    await invite(spaces, cfg, invite_csv(range(3, 4)), clock())
    assert (await jobs.run_once()).failed == 1
    assert smarthost.relay.mails == []
    (tmp_path / "relay.pw").write_text(SMTP_PASSWORD + "\n")
    clock.advance(minutes=2)
    assert (await jobs.run_once()).sent == 1
