"""The catalogue's model on SQLite and PostgreSQL (issue 10 items 1, 3–5): what a submission
is checked against, the review and the status history, consents with their scopes and expiry,
and the one decision every enforcement path asks."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from cryptography import x509

from catalogue.access import AppGate, CertificateStatus
from catalogue.consent import Consents
from catalogue.criteria import CRITERIA
from catalogue.manifest import parse
from catalogue.registry import Catalogue, CatalogueError
from directory.local import set_mailbox
from pki.ca import CertificateAuthority, IssuedCertificate, init_ca
from server.config import load_config, render_config
from server.delivery.message import parse as parse_message
from server.delivery.pipeline import AfterWork, Envelope, Origin, Plan
from server.workflows.catalogue import CatalogueWorkflow
from server.workflows.consent import scope_of
from storage import audit
from storage.accounts import SUBJECT, bind_identity, create_account
from storage.blobs import open_blob_store
from storage.crypto import MasterKey
from storage.db import Database, migrate
from storage.mailstore import MailStore, Recipient
from tests.catalogue.manifests import OTHER_SIRET, SIRET, encoded, good

EDITOR = "editeur@hygie.test"
APP = "suivi-diabete@hygie.test"
PATIENT = "279035121518989@patient.hygie.test"
START = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


@dataclass
class Pki:
    directory: Path
    ca: CertificateAuthority
    editor: IssuedCertificate
    app: IssuedCertificate
    stranger: IssuedCertificate


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = init_ca(directory, b"catalogue-test-ca", key_type="ec")
    ca.write_crl()
    return Pki(
        directory, ca,
        ca.issue_org("Editeur", "Exemple Sante", siret=SIRET, key_type="ec"),
        ca.issue_org("Suivi Diabete", "Exemple Sante", siret=SIRET, key_type="ec"),
        ca.issue_org("Autre", "Autre SAS", siret=OTHER_SIRET, key_type="ec"),
    )  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class World:
    db: Database
    catalogue: Catalogue
    consents: Consents
    gate: AppGate
    clock: Clock
    patient: Recipient
    serial: str
    pki: Pki


@pytest.fixture()
async def world(database_url: str, tmp_path: Path, pki: Pki) -> AsyncIterator[World]:
    await migrate(database_url)
    db = Database(database_url, open_blob_store("database", tmp_path / "b"))
    await db.start()
    master = MasterKey.create(tmp_path / "master.key")
    try:
        for address in (EDITOR, APP, PATIENT, "robot@hygie.test"):
            await create_account(db, master, address, None)
        subject = pki.editor.certificate.subject.rfc4514_string()
        await bind_identity(db, EDITOR, SUBJECT, subject)
        await bind_identity(db, APP, SUBJECT, pki.app.certificate.subject.rfc4514_string())
        clock = Clock()
        catalogue = Catalogue(db, pki.directory, local_domain=lambda d: d.endswith("hygie.test"),
                              clock=clock)  # fmt: skip
        consents = Consents(db, catalogue, certificate=CertificateStatus(None, pki.directory))
        patient = await MailStore(db).resolve(PATIENT)
        assert patient is not None
        serial = f"{pki.app.certificate.serial_number:X}"
        yield World(db, catalogue, consents, AppGate(consents), clock, patient, serial, pki)
    finally:
        await db.close()


async def referenced(world: World, **changes: object) -> int:
    manifest = parse(encoded(good(certificate=world.serial, **changes)))
    assert await world.catalogue.check(manifest, EDITOR) == []
    done = await world.catalogue.submit(manifest, EDITOR, "account:1")
    await world.catalogue.review(done.app.id, "ins", "pass", "", "cli:op")
    for code in CRITERIA:
        await world.catalogue.review(done.app.id, code, "pass", "", "cli:op")
    await world.catalogue.decide(done.app.id, "referenced", "tous les critères", "cli:op")
    return done.app.id


async def what_a_submission_is_checked_against(world: World, pki: Pki) -> None:
    check = world.catalogue.check
    ok = parse(encoded(good(certificate=world.serial)))
    assert await check(ok, EDITOR) == []
    assert await check(ok, "robot@hygie.test") == [
        f"the sending mailbox is not bound to an organisation certificate of SIRET {SIRET} "
        f"(hygie pki issue org --siret {SIRET} --mailbox ADDRESS)"
    ]
    assert await check(ok, "nobody@hygie.test") == [
        "the manifest must come from an organisation mailbox of this operator"
    ]
    absent = parse(encoded(good(certificate=world.serial, mailbox="absent@hygie.test")))
    assert "/mailbox: no mailbox absent@hygie.test here (ask the operator to open it)" in (
        await check(absent, EDITOR)
    )
    remote = parse(encoded(good(certificate=world.serial, mailbox=PATIENT)))
    assert "/mailbox: the APP mailbox must be a mailbox of this operator" in (
        await check(remote, EDITOR)
    )
    stranger = f"{pki.stranger.certificate.serial_number:X}"
    found = await check(parse(encoded(good(certificate=stranger))), EDITOR)
    assert found == ["/certificate: not issued to the editor's SIRET",
                     "/certificate: not bound to the APP mailbox"]  # fmt: skip
    found = await check(parse(encoded(good(certificate="ABCDEF0123"))), EDITOR)
    assert found == ["/certificate: no certificate ABCDEF0123 issued here"]
    # Nothing of this was stored.
    assert await world.catalogue.apps() == []


async def test_review_decisions_and_history(world: World) -> None:
    cat = world.catalogue
    manifest = parse(encoded(good(certificate=world.serial)))
    done = await cat.submit(manifest, EDITOR, "account:1")
    assert (done.app.status, done.version, done.new_app) == ("submitted", 1, True)
    with pytest.raises(CatalogueError, match="needs a --note"):
        await cat.review(done.app.id, "ethique", "fail", "", "cli:op")
    with pytest.raises(CatalogueError, match="unknown criterion"):
        await cat.review(done.app.id, "beauty", "pass", "", "cli:op")
    for code in CRITERIA:
        await cat.review(done.app.id, code, "pass", "", "cli:op")
    app, _ = await cat.review(done.app.id, "ethique", "fail", "revente de données", "cli:op")
    assert app.status == "under_review"
    with pytest.raises(CatalogueError, match="not passed: ethique"):
        await cat.decide(done.app.id, "referenced", "ok", "cli:op")
    with pytest.raises(CatalogueError, match="only a referenced app can be suspended"):
        await cat.decide(done.app.id, "suspended", "non", "cli:op")
    await cat.review(done.app.id, "ethique", "pass", "corrigé", "cli:op")
    decided = await cat.decide(done.app.id, "referenced", "conforme", "cli:op")
    assert (decided.app.status, decided.app.live_version) == ("referenced", 1)

    # A new manifest opens version 2; version 1 stays live until 2 is decided.
    v2 = parse(encoded(good(certificate=world.serial, version="1.1.0", name="Suivi Diabète 2",
                            scopes=["messages"])))  # fmt: skip
    assert await cat.check(v2, EDITOR) == []
    again = await cat.submit(v2, EDITOR, "account:1")
    assert (again.version, again.app.status, again.app.name) == (2, "referenced", "Suivi Diabète")
    refused = await cat.decide(done.app.id, "refused", "critères non revus", "cli:op")
    assert (refused.app.status, refused.app.live_version, refused.version) == ("referenced", 1, 2)
    await cat.decide(done.app.id, "suspended", "incident de sécurité", "cli:op")
    reinstated = await cat.decide(done.app.id, "referenced", "incident clos", "cli:op")
    assert reinstated.app.status == "referenced"
    await cat.decide(done.app.id, "withdrawn", "fin du service", "cli:op")
    assert await cat.check(v2, EDITOR) == [
        "/id: fr.exemple.suivi-diabete was withdrawn; submit it under a new id"
    ]
    history = [(h.status, h.version) for h in await cat.history(done.app.id)]
    assert history == [
        ("submitted", 1), ("under_review", 1), ("referenced", 1), ("submitted", 2),
        ("refused", 2), ("suspended", 1), ("referenced", 1), ("withdrawn", 1),
    ]  # fmt: skip
    assert [v.status for v in await cat.versions(done.app.id)] == ["referenced", "refused"]
    actions = [e.action for e in await audit.entries(world.db, action_prefix="catalogue.")]
    assert actions.count("catalogue.decide") == 5 and actions.count("catalogue.submit") == 2


def message(calendar: bool = False) -> bytes:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = APP, PATIENT, "Rappel"
    mail.set_content("Pensez à votre glycémie.")
    if calendar:
        mail.add_alternative(
            b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n",
            maintype="text",
            subtype="calendar",
            params={"method": "REQUEST"},
        )
    return mail.as_bytes()


async def test_consent_decides_every_path(world: World, pki: Pki) -> None:
    app_id = await referenced(world, scopes=["messages", "dossier-read", "agenda-write"])
    gate, patient, consents = world.gate, world.patient, world.consents
    calendar_scope = scope_of(parse_message(message(calendar=True)))
    assert calendar_scope == "agenda-write"
    assert await gate.rcpt(APP, patient, "127.0.0.1") == (
        "550 5.7.1 The patient has not connected this application"
    )
    assert await gate.rcpt(EDITOR, patient, "127.0.0.1") is None  # not an app: other rules
    with pytest.raises(CatalogueError, match="did not ask for: dossier-write"):
        await consents.connect(app_id, patient.account_id, ["dossier-write"],
                               START + dt.timedelta(days=1))  # fmt: skip
    with pytest.raises(CatalogueError, match="at most 3 years"):
        await consents.connect(app_id, patient.account_id, ["messages"],
                               START + dt.timedelta(days=4 * 365))  # fmt: skip
    await consents.connect(app_id, patient.account_id, ["messages"], START + dt.timedelta(days=1))
    assert await gate.rcpt(APP, patient, "127.0.0.1") is None
    assert await gate.data(APP, scope_of(parse_message(message())), [patient], "127.0.0.1") is None
    assert await gate.data(APP, calendar_scope, [patient], "127.0.0.1") == (
        "550 5.7.1 The patient's consent does not cover agenda-write "
        "(proposer des rendez-vous dans votre agenda)"
    )
    assert (await gate.agenda(APP, patient)) is not None

    world.clock.now = START + dt.timedelta(days=2)
    assert await gate.rcpt(APP, patient, "127.0.0.1") == (
        "550 5.7.1 The patient's consent to this application expired"
    )
    await consents.connect(app_id, patient.account_id, ["messages", "agenda-write"],
                           START + dt.timedelta(days=30))  # fmt: skip
    assert await gate.data(APP, calendar_scope, [patient], "127.0.0.1") is None
    assert await consents.revoke(app_id, patient.account_id)
    assert await gate.rcpt(APP, patient, "127.0.0.1") == (
        "550 5.7.1 The patient revoked this application's access"
    )
    await consents.connect(app_id, patient.account_id, ["messages"], START + dt.timedelta(days=30))

    # The app's certificate revoked: every path closes at once.
    pki.ca.revoke(world.serial, x509.ReasonFlags.key_compromise)
    try:
        assert await gate.rcpt(APP, patient, "127.0.0.1") == (
            "550 5.7.1 This application's certificate is revoked"
        )
    finally:
        pki.app = pki.ca.issue_org("Suivi Diabete", "Exemple Sante", siret=SIRET, key_type="ec")

    connection = (await consents.connections(patient.account_id))[0]
    seen = [(a.scope, a.outcome, a.reason) for a in connection.recent]
    assert seen[0] == ("mail", "refused", "certificate-revoked")
    assert ("messages", "allowed", "") in seen and ("agenda-write", "allowed", "") in seen
    assert connection.to_json(world.clock())["state"] == "active"
    refusals = await audit.entries(world.db, action_prefix="catalogue.refused")
    assert {e.detail["reason"] for e in refusals} >= {
        "no-consent",
        "scope",
        "consent-expired",
        "consent-revoked",
        "certificate-revoked",
    }
    assert all(e.target == f"account:{patient.account_id}" for e in refusals)  # never an INS

    # A directory APP mailbox the catalogue does not list reaches nobody.
    await set_mailbox(world.db, "robot@hygie.test", "APP", organisation_identifier=f"3{SIRET}")
    assert await world.gate.rcpt("robot@hygie.test", world.patient, "127.0.0.1") == (
        "550 5.7.1 This application is not referenced in the catalogue (no consent possible)"
    )
    entry = (await audit.entries(world.db, action_prefix="catalogue.refused"))[0]
    assert entry.actor == "mailbox:robot@hygie.test" and entry.detail["reason"] == "not-referenced"


async def test_the_workflow_answers_every_manifest(world: World, tmp_path: Path) -> None:
    """``catalogue@``: an acknowledgement, the list of problems, and a refusal for manifests
    the relay brought (their sender's organisation cannot be checked here); before that, what
    a submission is checked against."""
    await what_a_submission_is_checked_against(world, world.pki)
    (tmp_path / "hygie.toml").write_text(
        render_config("hygie.test", "mail.hygie.test").replace(
            'domains = ["hygie.test"]', 'domains = ["hygie.test", "patient.hygie.test"]'
        ),
        "utf-8",
    )
    sent: list[tuple[bytes, str]] = []

    async def notify(raw: bytes, to: str) -> bool:
        sent.append((raw, to))
        return True

    workflow = CatalogueWorkflow(load_config(tmp_path, environ={}), world.catalogue, notify)
    service = Recipient(0, "catalogue@hygie.test", b"", 0)

    def mail(data: bytes) -> bytes:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = EDITOR, service.address, "App"
        message["Message-ID"] = "<m1@hygie.test>"
        message.set_content("ci-joint")
        message.add_attachment(data, maintype="application", subtype="json", filename="app.json")
        return message.as_bytes()

    async def arrives(raw: bytes, origin: Origin, inbox: list[Recipient]) -> None:
        """The pipeline's two hooks: route (before the commit), then the job (after)."""
        envelope = Envelope(origin, EDITOR, tuple(inbox))
        plan = Plan(inbox=list(inbox))
        await workflow.route(parse_message(raw), envelope, plan)
        for _, data in plan.jobs:
            await workflow.after(AfterWork(parse_message(raw), envelope, data))

    good_manifest = encoded(good(certificate=world.serial))
    await arrives(mail(good_manifest), Origin.RELAY, [service])
    await arrives(mail(b'{"id": 1}'), Origin.SUBMISSION, [service])
    await arrives(mail(good_manifest), Origin.SUBMISSION, [service])
    await arrives(mail(good_manifest), Origin.SUBMISSION, [])  # not to us
    # RFC 3834 §2: a vacation notice or another robot's answer gets no answer (no loop).
    vacation = mail(b"").replace(b"Subject:", b"Auto-Submitted: auto-replied\nSubject:", 1)
    await arrives(vacation, Origin.RELAY, [service])
    replies = [email.message_from_bytes(raw, policy=email.policy.default) for raw, _ in sent]
    assert [to for _, to in sent] == [EDITOR] * 3
    bodies = [str(r.get_body(("plain",)).get_content()) for r in replies]  # type: ignore[union-attr]
    problems = [line for line in bodies[1].splitlines() if line.startswith("- ")]
    assert "- /id: must be of type string" in problems
    assert [str(r["Subject"]) for r in replies] == [
        "Catalogue : manifeste refusé (1 erreur(s))",
        f"Catalogue : manifeste refusé ({len(problems)} erreur(s))",
        "Catalogue : manifeste reçu (fr.exemple.suivi-diabete 1.0.0)",
    ]
    assert "- manifests are accepted only from a mailbox of this operator" in bodies[0]
    assert all(r["In-Reply-To"] == "<m1@hygie.test>" for r in replies)
    assert [a.key for a in await world.catalogue.apps()] == ["fr.exemple.suivi-diabete"]


def test_certificate_status(pki: Pki) -> None:
    serial = f"{pki.stranger.certificate.serial_number:X}"
    now = CertificateStatus(None, pki.directory)
    assert now(serial) is None
    assert now("ABCDEF0123") == "revoked" and now("not hex") == "revoked"  # fails closed
    later = CertificateStatus(None, pki.directory,
                              clock=lambda: dt.datetime(2100, 1, 1, tzinfo=dt.UTC))  # fmt: skip
    assert later(serial) == "expired"
